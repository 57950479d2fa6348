package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// The lab's k3s server on SQLite, an opt-in part (UpSQLite): a node with
// no etcd member whose datastore is <data dir>/server/db/state.db, served
// by a real kine over an etcd API with a kube-apiserver of its own on it,
// as k3s runs both in-process; the node's agent backs it up. It is a
// cluster of its own (its own kubeconfig and cluster id), beside the
// lab's etcd cluster.

// SQLiteNode is the name of the lab's server on SQLite.
const SQLiteNode = "sqlite-1"

// kineComponent is built only when a test asks for the SQLite server, so
// the rest of the lab never waits for it. Pure Go (CGO_ENABLED=0): kine
// then uses modernc.org/sqlite, the driver the agent reads state.db with.
var kineComponent = component{
	name: "kine", moduleDir: "hack/tools/kine", versionOf: "github.com/k3s-io/kine", variant: "static",
	pkgs: map[string]string{"kine": "github.com/k3s-io/kine"},
	env:  []string{"CGO_ENABLED=0"},
}

// kineParams are k3s's for its SQLite datastore.
const kineParams = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate"

// SQLiteServer is the running SQLite server.
type SQLiteServer struct {
	Node string
	// Kubeconfig reaches its kube-apiserver.
	Kubeconfig string
	// Agent is its agent's address, for KUBECTL_DR_AGENTS.
	Agent     string
	ClusterID string
	StateDB   string
}

// EnsureKine builds kine into the binary cache unless it is there.
func EnsureKine(ctx context.Context, root string, log io.Writer) (string, error) {
	cache := CacheDir()
	unlock, err := lockCache(cache)
	if err != nil {
		return "", err
	}
	defer unlock()
	dir, err := kineComponent.ensure(ctx, root, cache, log)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kine"), nil
}

func (l *Lab) sqliteProcs() []proc {
	k, api := l.proc("kine-"+SQLiteNode), l.proc("kube-apiserver-"+SQLiteNode)
	return []proc{api, k}
}

// StateDBPath is the SQLite server's datastore.
func (l *Lab) StateDBPath() string {
	return filepath.Join(l.DataDir(SQLiteNode), "server", "db", "state.db")
}

func (l *Lab) sqliteAPIURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["kube-apiserver-"+SQLiteNode])
}

// UpSQLite starts the SQLite server (kine, its kube-apiserver, its agent)
// unless it runs, building kine first if the cache has none.
func (l *Lab) UpSQLite(ctx context.Context) (*SQLiteServer, error) {
	kine, err := EnsureKine(ctx, l.Root, l.log)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kine-", "kube-apiserver-", "agent-", "metrics-"} {
		if _, err := l.port(name + SQLiteNode); err != nil {
			return nil, err
		}
	}
	l.State.KineBin, l.State.KubeAPIServerBin = kine, l.Bin.KubeAPIServer
	if err := l.saveState(); err != nil {
		return nil, err
	}
	data := l.DataDir(SQLiteNode)
	if err := os.MkdirAll(filepath.Join(data, "server", "db"), 0o700); err != nil {
		return nil, err
	}
	// k3s keeps the server token here; snapshots keep it beside them.
	token := filepath.Join(data, "server", "token")
	if _, err := os.Stat(token); err != nil {
		if err := os.WriteFile(token, []byte("K10"+randomHex(24)+"::server:"+randomHex(16)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	if err := l.StartSQLiteK3s(ctx); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(l.Dir, "kubeconfig-"+SQLiteNode)
	if err := l.writeKubeconfigFor(kubeconfig, l.sqliteAPIURL()); err != nil {
		return nil, err
	}
	client, err := l.apiHTTPClient()
	if err != nil {
		return nil, err
	}
	uid, err := l.namespaceUID(ctx, client, l.sqliteAPIURL(), "kube-system")
	if err != nil {
		return nil, err
	}
	if err := l.writeSQLiteAgentCerts(); err != nil {
		return nil, err
	}
	cfg, err := l.AgentConfig(SQLiteNode)
	if err != nil {
		return nil, err
	}
	cfg.ClusterID = uid
	cfg.WAL.Sources = nil
	cfg.Etcd.KineEndpoint = l.kineURL()
	cfg.Etcd.SnapshotKeyFile = l.SnapshotKeyPath()
	cmd := func(verb string) []string {
		return []string{l.State.LabBin, verb, "--dir", l.Dir, "--root", l.Root, "k3s-" + SQLiteNode}
	}
	// The stand-in answers k3s --version for the preflight (k3s itself
	// runs no cluster reset on SQLite).
	cfg.Restore = agentconfig.Restore{Flavor: agentconfig.FlavorK3s, StopCommand: cmd("stop"), StartCommand: cmd("start"),
		K3sBinary: filepath.Join(filepath.Dir(l.State.LabBin), "k3s-standin")}
	password, err := os.ReadFile(l.ResticPasswordPath())
	if err != nil {
		return nil, err
	}
	if err := writeSecretFiles(map[string]string{
		cfg.Store.AccessKeyFile: l.State.MinIOUser,
		cfg.Store.SecretKeyFile: l.State.MinIOSecret,
		cfg.Restic.PasswordFile: strings.TrimSpace(string(password)),
	}); err != nil {
		return nil, err
	}
	name := "agent-" + SQLiteNode
	if _, ok := l.proc(name).pid(l.Dir); !ok {
		if err := l.StartAgent(ctx, name, cfg); err != nil {
			return nil, err
		}
	}
	return &SQLiteServer{Node: SQLiteNode, Kubeconfig: kubeconfig, Agent: SQLiteNode + "=" + l.AgentAddr(SQLiteNode), ClusterID: uid, StateDB: l.StateDBPath()}, nil
}

func (l *Lab) kineURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d", l.State.Ports["kine-"+SQLiteNode])
}

// StartSQLiteK3s starts kine on state.db and the kube-apiserver on kine,
// what `systemctl start k3s` does on a server on SQLite, and waits until
// the API server is ready. It fails when kine exits (a database it cannot
// open).
func (l *Lab) StartSQLiteK3s(ctx context.Context) error {
	if l.State.KineBin == "" {
		return errors.New("the SQLite server was never set up: UpSQLite first")
	}
	k := l.proc("kine-" + SQLiteNode)
	if _, ok := k.pid(l.Dir); !ok {
		port := l.State.Ports["kine-"+SQLiteNode]
		if err := waitPortFree(port, 20*time.Second); err != nil {
			return fmt.Errorf("kine: %w", err)
		}
		cmd := exec.Command(l.State.KineBin,
			"--endpoint", "sqlite://"+l.StateDBPath()+"?"+kineParams,
			"--listen-address", fmt.Sprintf("127.0.0.1:%d", port),
			"--metrics-bind-address", "0")
		if _, err := k.start(cmd); err != nil {
			return err
		}
		if err := k.waitReady(ctx, l.Dir, 30*time.Second, dialCheck(fmt.Sprintf("127.0.0.1:%d", port))); err != nil {
			return fmt.Errorf("kine on %s: %w", l.StateDBPath(), err)
		}
	}
	api := l.proc("kube-apiserver-" + SQLiteNode)
	if _, ok := api.pid(l.Dir); ok {
		return nil
	}
	port := l.State.Ports["kube-apiserver-"+SQLiteNode]
	if err := waitPortFree(port, 30*time.Second); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	kube := filepath.Join(l.Dir, "pki", "kube")
	cmd := exec.Command(l.State.KubeAPIServerBin,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--endpoint-reconciler-type", "none",
		"--etcd-servers", l.kineURL(),
		"--tls-cert-file", filepath.Join(kube, "apiserver.crt"),
		"--tls-private-key-file", filepath.Join(kube, "apiserver.key"),
		"--client-ca-file", filepath.Join(kube, "ca.crt"),
		"--token-auth-file", filepath.Join(kube, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(kube, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(kube, "sa.key"),
		"--service-cluster-ip-range", "10.43.0.0/16",
		"--allow-privileged",
		"--cert-dir", filepath.Join(l.Dir, "kube-apiserver-"+SQLiteNode),
		"--v", "0",
	)
	if _, err := api.start(cmd); err != nil {
		return err
	}
	client, err := l.apiHTTPClient()
	if err != nil {
		return err
	}
	return api.waitReady(ctx, l.Dir, 90*time.Second, func(ctx context.Context) error {
		if _, ok := k.pid(l.Dir); !ok {
			return fmt.Errorf("kine exited (see %s)", k.logFile)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.sqliteAPIURL()+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+l.State.KubeToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// StopSQLiteK3s stops the kube-apiserver and kine, as `systemctl stop
// k3s` stops both.
func (l *Lab) StopSQLiteK3s() error {
	var errs []error
	for _, p := range l.sqliteProcs() {
		if p.name == "kube-apiserver-"+SQLiteNode {
			// Its clean exit takes ~14 s and nothing of it is kept.
			p.stopSignal = syscall.SIGKILL
		}
		if _, err := p.stop(l.Dir, 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func waitPortFree(port int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); !portFree(port); {
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d is held by another process", port)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil
}

// writeSQLiteAgentCerts issues the SQLite server's agent its mTLS
// certificate from the lab's dr CA, once.
func (l *Lab) writeSQLiteAgentCerts() error {
	dir := l.agentDir(SQLiteNode)
	// A lab from before node certificates gets one naming the node.
	if certNamesNode(filepath.Join(dir, "tls.crt"), SQLiteNode) {
		return nil
	}
	drDir := filepath.Join(l.Dir, "pki", "dr")
	ca, err := pki.LoadCA(filepath.Join(drDir, "ca.crt"), filepath.Join(drDir, "ca.key"))
	if err != nil {
		return err
	}
	kp, err := ca.Issue(agentLeaf(SQLiteNode, false))
	if err != nil {
		return err
	}
	if err := kp.WriteFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(drDir, "ca.crt"))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644)
}
