package cmd_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dr/kubectl-dr/agent/server"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// clusterID names the test cluster in the store, as the kube-system
// namespace's UID does in a real one.
const clusterID = "test-cluster"

// env is one test's world: a file:// store in a temporary directory and
// agents served in-process over bufconn with mTLS, reached the way
// --agent NODE=HOST:PORT reaches them. There is no API server.
type env struct {
	t        *testing.T
	storeDir string
	// store is the cluster's part of the store, as verbs open it.
	store objstore.Store
	// ca signs every certificate; serverTLS is the agents' bootstrap
	// certificate, nodeTLS each node's.
	ca         *pki.CA
	certDir    string
	serverTLS  mtls.Files
	clientTLS  mtls.Files
	nodeTLS    map[string]mtls.Files
	unenrolled map[string]bool
	// agentCA lets commands enroll agents (read install's CA).
	agentCA     bool
	mu          sync.Mutex
	listeners   map[string]*bufconn.Listener
	agents      []string
	noStore     bool
	snapshotKey *age.X25519Identity
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, storeDir: t.TempDir(), listeners: map[string]*bufconn.Listener{}, nodeTLS: map[string]mtls.Files{}, unenrolled: map[string]bool{}}
	root, err := objstore.Open(objstore.Config{URL: "file://" + e.storeDir})
	if err != nil {
		t.Fatal(err)
	}
	e.store = root.Sub(clusterID)
	e.certDir = t.TempDir()
	e.ca, e.serverTLS, e.clientTLS = writeCerts(t, e.certDir)
	return e
}

// writeCerts makes a CA, the agents' bootstrap certificate and the
// plugin's certificate in dir.
func writeCerts(t *testing.T, dir string) (ca *pki.CA, bootstrapTLS, clientTLS mtls.Files) {
	t.Helper()
	ca, caPair, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, caPair.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return ca, issueCert(t, ca, dir, "agent", pki.LeafOptions{CommonName: "agent", DNSNames: []string{agentclient.ServerName}, Server: true}),
		issueCert(t, ca, dir, "client", pki.LeafOptions{CommonName: "kubectl-dr", Client: true})
}

func issueCert(t *testing.T, ca *pki.CA, dir, name string, o pki.LeafOptions) mtls.Files {
	t.Helper()
	kp, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	f := mtls.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	if err := kp.WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	return f
}

// agentTLS is the certificate node's agent is configured with: its node's
// (as if enrolled), or the bootstrap one for a node marked unenrolled.
func (e *env) agentTLS(node string) mtls.Files {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unenrolled[node] {
		return e.serverTLS
	}
	if f, ok := e.nodeTLS[node]; ok {
		return f
	}
	f := issueCert(e.t, e.ca, e.certDir, "node-"+node, pki.LeafOptions{CommonName: pki.NodeDNSName(node), DNSNames: pki.NodeDNSNames(node), Server: true})
	e.nodeTLS[node] = f
	return f
}

// address is where node's agent is said to listen.
func address(node string) string { return "bufconn-" + node + ":9650" }

// agent serves the real agent (agent/server) for node. Its data and state
// directories are empty (not an etcd member), restic is missing and no
// restic password is configured, so file backups are off: what needs
// restic or etcd is refused the way a real node refuses it.
func (e *env) agent(node string, mutate func(*agentconfig.Config)) {
	e.t.Helper()
	e.agentWith(node, mutate)
}

// agentWith is agent with more server options (an interceptor that acts
// between two calls, say).
func (e *env) agentWith(node string, mutate func(*agentconfig.Config), extra ...grpc.ServerOption) {
	e.t.Helper()
	cfg := &agentconfig.Config{
		NodeName:  node,
		DataDir:   e.t.TempDir(),
		StateDir:  e.t.TempDir(),
		TLS:       e.agentTLS(node),
		ClusterID: clusterID,
		Store:     objstore.Config{URL: "file://" + e.storeDir},
		Restic:    agentconfig.Restic{Binary: "/nonexistent/restic"},
	}
	if mutate != nil {
		mutate(cfg)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	tlsCfg, err := srv.TLSConfig()
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveTLS(node, tlsCfg, func(opts ...grpc.ServerOption) *grpc.Server { return srv.GRPCServer(append(opts, extra...)...) })
}

// fakeAgent serves srv for node: for what the real agent cannot do here
// (restic, etcd). Tests that use one say so in their names.
func (e *env) fakeAgent(node string, srv agentv1.AgentServiceServer) {
	e.t.Helper()
	e.serve(node, func(opts ...grpc.ServerOption) *grpc.Server {
		gs := grpc.NewServer(opts...)
		agentv1.RegisterAgentServiceServer(gs, srv)
		return gs
	})
}

func (e *env) serve(node string, newServer func(...grpc.ServerOption) *grpc.Server) {
	tlsCfg, err := mtls.ServerConfig(e.agentTLS(node))
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveTLS(node, tlsCfg, newServer)
}

func (e *env) serveTLS(node string, tlsCfg *tls.Config, newServer func(...grpc.ServerOption) *grpc.Server) {
	lis := bufconn.Listen(1 << 20)
	gs := newServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	go gs.Serve(lis)
	e.t.Cleanup(gs.Stop)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listeners[address(node)] = lis
	e.agents = append(e.agents, node+"="+address(node))
}

// deadAgent names an agent for node at an address nothing listens on.
func (e *env) deadAgent(node string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.agents = append(e.agents, node+"="+address(node))
}

func (e *env) dial(ctx context.Context, addr string) (net.Conn, error) {
	e.mu.Lock()
	lis, ok := e.listeners[addr]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial tcp %s: connect: connection refused", addr)
	}
	return lis.DialContext(ctx)
}

// result is what a run of kubectl dr left behind.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs kubectl dr with args, as main does, on this env.
func (e *env) run(args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.runContext(ctx, args...)
}

func (e *env) runContext(ctx context.Context, args ...string) result {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	code := cmd.Execute(ctx, &testFactory{e}, streams, args)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// writeSet seeds a backup set record, as backup create writes it: signed
// with kubectl dr's client certificate.
func (e *env) writeSet(s *backupset.Set) {
	e.t.Helper()
	pair, err := e.clientTLS.KeyPair()
	if err != nil {
		e.t.Fatal(err)
	}
	sign, err := signature.FromKeyPair(pair)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := backupset.Write(context.Background(), e.store, s, sign); err != nil {
		e.t.Fatal(err)
	}
}

// readSet reads a set record back; nil when there is none.
func (e *env) readSet(id string) *backupset.Set {
	e.t.Helper()
	ok, err := backupset.Exists(context.Background(), e.store, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	s, err := backupset.Read(context.Background(), e.store, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// testFactory is the cmdutil.Factory of an env: its store and agents, and
// no API server.
type testFactory struct{ e *env }

var errNoAPIServer = fmt.Errorf("no API server in this test")

// agentCA is install's CA when the test lets commands read it.
func (f *testFactory) agentCA() agentclient.AgentCAFunc {
	if !f.e.agentCA {
		return nil
	}
	return func(context.Context) (*pki.CA, error) { return f.e.ca, nil }
}

func (f *testFactory) BindFlags(*pflag.FlagSet)      {}
func (f *testFactory) BindStoreFlags(*pflag.FlagSet) {}
func (f *testFactory) AgentNamespace() string        { return agentclient.DefaultNamespace }

func (f *testFactory) AgentOptions(nodes []string) agentclient.Options {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	return agentclient.Options{
		Agents:    append([]string(nil), f.e.agents...),
		Namespace: agentclient.DefaultNamespace,
		Nodes:     nodes,
		TLS:       f.e.clientTLS,
		Dialer:    f.e.dial,
		AgentCA:   f.agentCA(),
		SnapshotKey: func(ctx context.Context) ([]byte, error) {
			return cmdutil.IdentityBytes(f.SnapshotKey(ctx, ""))
		},
	}
}

func (f *testFactory) User() string                              { return "tester (kubeconfig)" }
func (f *testFactory) Clientset() (kubernetes.Interface, error)  { return nil, errNoAPIServer }
func (f *testFactory) DynamicClient() (dynamic.Interface, error) { return nil, errNoAPIServer }
func (f *testFactory) RESTMapper() (meta.RESTMapper, error)      { return nil, errNoAPIServer }

func (f *testFactory) StoreConfig() objstore.Config {
	return objstore.Config{URL: "file://" + f.e.storeDir}
}

func (f *testFactory) StoreFromSecret(context.Context) (objstore.Config, error) {
	return objstore.Config{}, errNoAPIServer
}

func (f *testFactory) OpenStore(context.Context) (objstore.Store, error) {
	if f.e.noStore {
		return nil, fmt.Errorf("no store configured: %w", errNoAPIServer)
	}
	return f.e.store, nil
}

func (f *testFactory) ClusterID(context.Context) (string, error) { return clusterID, nil }

func (f *testFactory) SnapshotKey(context.Context, string) (*age.X25519Identity, error) {
	return f.e.snapshotKey, nil
}

// rows are a table's data rows by their first column, split on blanks;
// the table ends at the first empty line.
func rows(t *testing.T, table string) map[string][]string {
	t.Helper()
	table, _, _ = strings.Cut(table, "\n\n")
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	out := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 0 {
			out[f[0]] = f
		}
	}
	return out
}

// firstColumn is a table's first column, header excluded, in order.
func firstColumn(table string) []string {
	var out []string
	for i, l := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// jsonError is the error object -o json prints on stderr's last line.
func jsonError(t *testing.T, stderr string) printers.Error {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	var e printers.Error
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil {
		t.Fatalf("stderr's last line is not a JSON error: %v\n%s", err, stderr)
	}
	return e
}
