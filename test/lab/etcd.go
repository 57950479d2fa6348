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
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
)

func (l *Lab) etcdClientURL(node string) string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["etcd-"+node+"-client"])
}

func (l *Lab) etcdPeerURL(node string) string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["etcd-"+node+"-peer"])
}

// EtcdClient says how to reach a node's member with the k3s client
// certificate, as the agent does.
func (l *Lab) EtcdClient(node string) etcdsnap.ClientConfig {
	tls := filepath.Join(l.DataDir(node), "server", "tls", "etcd")
	return etcdsnap.ClientConfig{
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
		if err := l.startEtcdMember(n, cluster); err != nil {
			return err
		}
		fmt.Fprintf(l.log, "etcd %s: started on %s\n", n, l.etcdClientURL(n))
		started = append(started, n)
	}
	return parallel(ctx, func() []func(context.Context) error {
		var fns []func(context.Context) error
		for _, n := range started {
			fns = append(fns, func(ctx context.Context) error {
				return l.proc("etcd-"+n).waitReady(ctx, l.Dir, 60*time.Second, func(ctx context.Context) error {
					st := etcdsnap.Status(ctx, l.EtcdClient(n))
					return st.Err
				})
			})
		}
		return fns
	}()...)
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
	return l.startEtcdMember(node, cluster)
}

func (l *Lab) startEtcdMember(n string, cluster []string) error {
	p := l.proc("etcd-" + n)
	dataDir := l.DataDir(n)
	for _, d := range []string{"server/db/snapshots", "storage"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o755); err != nil {
			return err
		}
	}
	// The server token, as k3s writes it: snapshots keep it (encrypted)
	// for restores onto new hosts.
	token := filepath.Join(dataDir, "server", "token")
	if _, err := os.Stat(token); errors.Is(err, os.ErrNotExist) {
		secret := make([]byte, 16)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		if err := os.WriteFile(token, []byte(fmt.Sprintf("K10%x::server:%x\n", sha256.Sum256(secret), secret)), 0o600); err != nil {
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
		"--initial-cluster-state", "new",
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
