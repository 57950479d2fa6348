package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
)

func (l *Lab) etcdClientURL(node string) string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["etcd-"+node+"-client"])
}

func (l *Lab) etcdPeerURL(node string) string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["etcd-"+node+"-peer"])
}

// EtcdClient says how to reach a node's member with the k3s client
// certificate, as the agent does.
func (l *Lab) EtcdClient(node string) etcdmember.ClientConfig {
	tls := filepath.Join(l.DataDir(node), "server", "tls", "etcd")
	return etcdmember.ClientConfig{
		Endpoint: l.etcdClientURL(node),
		CA:       filepath.Join(tls, "server-ca.crt"),
		Cert:     filepath.Join(tls, "client.crt"),
		Key:      filepath.Join(tls, "client.key"),
	}
}

// upEtcd starts the members that are not running and waits until each
// answers a linearizable read (so the cluster has quorum).
func (l *Lab) upEtcd(ctx context.Context) error {
	var cluster []string
	for _, n := range l.EtcdNodes() {
		cluster = append(cluster, n+"="+l.etcdPeerURL(n))
	}
	var started []string
	for _, n := range l.EtcdNodes() {
		p := l.proc("etcd-" + n)
		if pid, ok := p.pid(l.Dir); ok {
			fmt.Fprintf(l.log, "etcd %s: already running (pid %d)\n", n, pid)
			continue
		}
		if err := l.startEtcdMember(n, cluster, "new"); err != nil {
			return err
		}
		fmt.Fprintf(l.log, "etcd %s: started on %s\n", n, l.etcdClientURL(n))
		started = append(started, n)
	}
	err := parallel(ctx, func() []func(context.Context) error {
		var fns []func(context.Context) error
		for _, n := range started {
			fns = append(fns, func(ctx context.Context) error {
				return l.proc("etcd-"+n).waitReady(ctx, l.Dir, 60*time.Second, func(ctx context.Context) error {
					st := etcdmember.Status(ctx, l.EtcdClient(n))
					return st.Err
				})
			})
		}
		return fns
	}()...)
	if err != nil {
		return err
	}
	return l.writeBootstrapData(ctx)
}

// clusterToken is the lab's k3s server token (K10<hash>::server:<secret>),
// made once per lab.
func (l *Lab) clusterToken() (string, error) {
	path := filepath.Join(l.Dir, "pki", "server-token")
	data, err := os.ReadFile(path)
	if err == nil {
		return string(data), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	t := fmt.Sprintf("K10%x::server:%x\n", sha256.Sum256(secret), secret)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return t, os.WriteFile(path, []byte(t), 0o600)
}

// writeBootstrapData stores k3s's bootstrap data in etcd as a k3s server
// does when it first starts: under /bootstrap/<hash of the token>,
// encrypted with it (internal/k3sboot). A restore's preflight checks the
// token against it, as k3s does when it starts on a restored datastore.
func (l *Lab) writeBootstrapData(ctx context.Context) error {
	first := l.EtcdNodes()[0]
	token, err := os.ReadFile(filepath.Join(l.DataDir(first), "server", "token"))
	if err != nil {
		return err
	}
	cli, err := l.EtcdClient(first).New()
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, k3sboot.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("read k3s's bootstrap key: %w", err)
	}
	if resp.Count > 0 {
		return nil
	}
	value, err := k3sboot.Encrypt(string(token), []byte(`{"ServerCA":{"Content":"bGFi"}}`))
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, k3sboot.Key(string(token)), string(value)); err != nil {
		return fmt.Errorf("write k3s's bootstrap key: %w", err)
	}
	return nil
}

// StartEtcdMember starts one member again after StopProcess("etcd-"+node)
// (a restore's start command in the lab); it does not wait for it.
func (l *Lab) StartEtcdMember(node string) error {
	var cluster []string
	for _, n := range l.EtcdNodes() {
		cluster = append(cluster, n+"="+l.etcdPeerURL(n))
	}
	if pid, ok := l.proc("etcd-" + node).pid(l.Dir); ok {
		return fmt.Errorf("etcd %s already runs (pid %d)", node, pid)
	}
	member := filepath.Join(l.DataDir(node), "server", "db", "etcd", "member")
	if _, err := os.Stat(member); errors.Is(err, os.ErrNotExist) {
		return l.joinEtcdMember(node)
	}
	return l.startEtcdMember(node, cluster, "new")
}

// joinEtcdMember does what a k3s server with no etcd data does when it
// starts: it adds itself to the running cluster through another member
// and starts as a new member of it. Adding is retried while the cluster
// cannot take a member yet (another one just added has not started).
func (l *Lab) joinEtcdMember(node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for ctx.Err() == nil {
		for _, other := range l.EtcdNodes() {
			if other == node {
				continue
			}
			cluster, err := l.addEtcdMember(ctx, other, node)
			if err == nil {
				return l.startEtcdMember(node, cluster, "existing")
			}
			errs = append(errs, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("etcd %s: could not join the cluster: %w", node, errors.Join(errs...))
}

func (l *Lab) addEtcdMember(ctx context.Context, via, node string) ([]string, error) {
	cli, err := l.EtcdClient(via).New()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// An earlier add may have gone through although its answer was lost
	// (a timeout while two servers rejoin at once): then the member is
	// listed, not started, and adding it again can only fail. Start it.
	peer := l.etcdPeerURL(node)
	if list, err := cli.MemberList(actx); err == nil {
		for _, m := range list.Members {
			if slices.Contains(m.PeerURLs, peer) && m.Name == "" {
				return clusterOf(list.Members, m.ID, node), nil
			}
		}
	}
	resp, err := cli.MemberAdd(actx, []string{peer})
	if err != nil {
		return nil, fmt.Errorf("add %s through %s: %w", node, via, err)
	}
	return clusterOf(resp.Members, resp.Member.ID, node), nil
}

// clusterOf is the --initial-cluster of members, with the one of id (not
// started yet, so nameless) named node.
func clusterOf(members []*etcdserverpb.Member, id uint64, node string) []string {
	var cluster []string
	for _, m := range members {
		name := m.Name
		if m.ID == id {
			name = node
		}
		for _, u := range m.PeerURLs {
			cluster = append(cluster, name+"="+u)
		}
	}
	return cluster
}

func (l *Lab) startEtcdMember(n string, cluster []string, state string) error {
	p := l.proc("etcd-" + n)
	dataDir := l.DataDir(n)
	for _, d := range []string{"server/db/snapshots", "storage"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o755); err != nil {
			return err
		}
	}
	// The server token, as k3s writes it: snapshots keep it (encrypted)
	// for restores onto new hosts. Every server of a k3s cluster has the
	// same one.
	token := filepath.Join(dataDir, "server", "token")
	if _, err := os.Stat(token); errors.Is(err, os.ErrNotExist) {
		t, err := l.clusterToken()
		if err != nil {
			return err
		}
		if err := os.WriteFile(token, []byte(t), 0o600); err != nil {
			return err
		}
	}
	tls := filepath.Join(dataDir, "server", "tls", "etcd")
	bin := l.State.EtcdBin
	if l.Bin != nil {
		bin = l.Bin.Etcd
	}
	cmd := exec.Command(bin,
		"--name", n,
		"--data-dir", filepath.Join(dataDir, "server", "db", "etcd"),
		"--listen-client-urls", l.etcdClientURL(n),
		"--advertise-client-urls", l.etcdClientURL(n),
		"--listen-peer-urls", l.etcdPeerURL(n),
		"--initial-advertise-peer-urls", l.etcdPeerURL(n),
		"--initial-cluster", strings.Join(cluster, ","),
		"--initial-cluster-state", state,
		"--initial-cluster-token", "dr-lab",
		"--client-cert-auth",
		"--trusted-ca-file", filepath.Join(tls, "server-ca.crt"),
		"--cert-file", filepath.Join(tls, "server-client.crt"),
		"--key-file", filepath.Join(tls, "server-client.key"),
		"--peer-client-cert-auth",
		"--peer-trusted-ca-file", filepath.Join(tls, "peer-ca.crt"),
		"--peer-cert-file", filepath.Join(tls, "peer-server-client.crt"),
		"--peer-key-file", filepath.Join(tls, "peer-server-client.key"),
		// As k3s does: small heartbeats are fine on loopback.
		"--heartbeat-interval", "100",
		"--election-timeout", "1000",
		"--snapshot-count", "10000",
		"--log-level", "warn",
	)
	if _, err := p.start(cmd); err != nil {
		return err
	}
	return nil
}
