package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Options size the lab.
type Options struct {
	// Dir holds everything the lab creates; down never touches anything
	// outside it.
	Dir string
	// Root is the repository root (for the tools modules and our sources).
	Root string
	// EtcdMembers is 1 or 3; nodes beyond it are k3s agent (worker) nodes.
	EtcdMembers int
	// Nodes is the number of nodes, each with a dr-agent.
	Nodes int
	// KubeNode, when set, is the node that runs a real kubelet and
	// containerd, its agent as the DaemonSet's pod; the others keep agent
	// processes reached directly.
	KubeNode string
	// EtcdRestore configures the etcd members' agents to restore etcd:
	// "etcd" the kubeadm way, "k3s" with k3s's cluster reset (run by the
	// k3s stand-in); either stops and starts the lab's etcd processes with
	// `lab stop|start`. Empty: the agents cannot restore etcd.
	EtcdRestore string
	Log         io.Writer
}

// Lab is a running (or stopped) lab and its recorded state.
type Lab struct {
	Dir  string
	Root string
	Bin  *Binaries
	log  io.Writer
	// extra names agents started by StartAgent, stopped by Down.
	extra []string
	// mu guards State while components start in parallel.
	mu sync.Mutex

	State State
}

// State is written to <dir>/lab.json at the first up, so that later ups
// reuse the same ports (etcd's peer URLs live in its data) and secrets.
type State struct {
	EtcdMembers int            `json:"etcdMembers"`
	Nodes       []string       `json:"nodes"`
	Ports       map[string]int `json:"ports"`
	KubeToken   string         `json:"kubeToken"`
	MinIOUser   string         `json:"minioUser"`
	MinIOSecret string         `json:"minioSecret"`
	// AppS3Key and AppS3Secret reach the application's S3 (SeaweedFS).
	AppS3Key    string `json:"appS3Key,omitempty"`
	AppS3Secret string `json:"appS3Secret,omitempty"`
	Bucket      string `json:"bucket"`
	KubeNode    string `json:"kubeNode,omitempty"`
	// AgentImageSHA is the last agent image imported; a new one restarts
	// the DaemonSet's pods.
	AgentImageSHA string `json:"agentImageSHA,omitempty"`
	// HostBefore is recorded before the node starts, for down to restore.
	HostBefore *HostBefore `json:"hostBefore,omitempty"`
	// ClusterID is the kube-system namespace's UID, as in a real cluster.
	ClusterID string `json:"clusterID,omitempty"`
	// BinDirs go in front of PATH: our binaries, then the cached ones.
	BinDirs []string `json:"binDirs"`
	// EtcdBin starts a member again without building anything (lab start).
	EtcdBin string `json:"etcdBin,omitempty"`
	// LabBin is the lab CLI; EtcdRestore as in Options.
	LabBin      string `json:"labBin,omitempty"`
	EtcdRestore string `json:"etcdRestore,omitempty"`
	// KineBin and KubeAPIServerBin start the SQLite server again (lab
	// start k3s-sqlite-1) without building anything; set by UpSQLite.
	KineBin          string `json:"kineBin,omitempty"`
	KubeAPIServerBin string `json:"kubeAPIServerBin,omitempty"`
	// DrillChecks go into the first node's agent config (SetDrillChecks).
	DrillChecks []agentconfig.Check `json:"drillChecks,omitempty"`
}

func (l *Lab) statePath() string { return filepath.Join(l.Dir, "lab.json") }

// Open reads the state of an existing lab directory (for env and down).
func Open(dir, root string) (*Lab, error) {
	l := &Lab{Dir: dir, Root: root, log: io.Discard}
	err := l.readState()
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s: run `hack/lab up` first", dir)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// readState loads lab.json; a missing file is os.ErrNotExist.
func (l *Lab) readState() error {
	data, err := os.ReadFile(l.statePath())
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &l.State); err != nil {
		return fmt.Errorf("read lab state %s: %w", l.statePath(), err)
	}
	return nil
}

// Up builds what is missing and starts every component that is not already
// running. It is safe to run again.
func Up(ctx context.Context, o Options) (*Lab, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.EtcdMembers != 1 && o.EtcdMembers != 3 {
		return nil, fmt.Errorf("etcd members: want 1 or 3, got %d", o.EtcdMembers)
	}
	if o.Nodes < o.EtcdMembers {
		return nil, fmt.Errorf("nodes (%d) must be at least the etcd members (%d)", o.Nodes, o.EtcdMembers)
	}
	// What the machine must have is checked before minutes of builds
	// (hack/setup.sh installs it).
	if err := checkMachine(o); err != nil {
		return nil, fmt.Errorf("%w (or run hack/setup.sh as root)", err)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lab dir: %w", err)
	}
	// PostgreSQL runs as a non-root user that must reach its data dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir, Root: o.Root, log: o.Log}
	if err := l.loadOrInitState(o); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "lab in %s: %d etcd members, %d nodes\n", dir, l.State.EtcdMembers, len(l.State.Nodes))

	l.Bin, err = Build(ctx, o.Root, filepath.Join(dir, "bin"), o.Log)
	if err != nil {
		return nil, err
	}
	l.State.BinDirs = l.Bin.Dirs
	l.State.EtcdBin = l.Bin.Etcd
	l.State.LabBin = l.Bin.Lab
	l.State.KubeAPIServerBin = l.Bin.KubeAPIServer
	l.State.EtcdRestore = o.EtcdRestore
	if err := l.saveState(); err != nil {
		return nil, err
	}
	if err := l.writeCerts(); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if err := l.writeSnapshotKey(); err != nil {
		return nil, fmt.Errorf("snapshot key: %w", err)
	}
	if err := l.writeResticPassword(); err != nil {
		return nil, fmt.Errorf("restic password: %w", err)
	}

	// etcd, MinIO and PostgreSQL are independent; the API server needs etcd,
	// the agents need etcd up to report its health.
	steps := []func(context.Context) error{l.upEtcd, l.upMinIO, l.upPostgres, l.upSeaweedFS}
	if err := parallel(ctx, steps...); err != nil {
		return l, err
	}
	// The agents need the cluster id, which the API server knows.
	if err := l.upAPIServer(ctx); err != nil {
		return l, err
	}
	if err := l.upAgents(ctx); err != nil {
		return l, err
	}
	if err := l.upNode(ctx); err != nil {
		return l, err
	}
	fmt.Fprintf(o.Log, "lab is up: eval \"$(hack/lab env)\"\n")
	return l, nil
}

func checkMachine(o Options) error {
	if _, err := pgBinDir(); err != nil {
		return err
	}
	if o.KubeNode != "" {
		return checkNodeTools()
	}
	return nil
}

func parallel(ctx context.Context, fns ...func(context.Context) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Lab) loadOrInitState(o Options) error {
	err := l.readState()
	if err == nil {
		if l.State.EtcdMembers != o.EtcdMembers || len(l.State.Nodes) != o.Nodes || l.State.KubeNode != o.KubeNode {
			return fmt.Errorf("the lab in %s has %d etcd members, %d nodes and Kubernetes node %q, not %d, %d and %q: run `hack/lab down && hack/lab clean` to start over",
				l.Dir, l.State.EtcdMembers, len(l.State.Nodes), l.State.KubeNode, o.EtcdMembers, o.Nodes, o.KubeNode)
		}
		// A lab from before the real node's agent came through install:
		// its health port must be its gRPC port + 1, as install renders
		// it. The pod's ports are free to move (install puts it back).
		if k := l.State.KubeNode; k != "" && l.State.Ports["metrics-"+k] != l.State.Ports["agent-"+k]+1 {
			delete(l.State.Ports, "agent-"+k)
			delete(l.State.Ports, "metrics-"+k)
			kubeNodePorts(l.State.Ports, k, false)
			return l.saveState()
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := State{EtcdMembers: o.EtcdMembers, Ports: map[string]int{}, Bucket: "dr-lab", KubeNode: o.KubeNode}
	for i := 1; i <= o.Nodes; i++ {
		name := fmt.Sprintf("server-%d", i)
		if i > o.EtcdMembers {
			name = fmt.Sprintf("agent-%d", i-o.EtcdMembers)
		}
		s.Nodes = append(s.Nodes, name)
	}
	var names []string
	for _, n := range s.Nodes[:o.EtcdMembers] {
		names = append(names, "etcd-"+n+"-client", "etcd-"+n+"-peer")
	}
	for _, n := range s.Nodes {
		names = append(names, "agent-"+n, "metrics-"+n)
	}
	names = append(names, "kube-apiserver", "minio", "minio-console", "postgres")
	if o.KubeNode != "" {
		kubeNodePorts(s.Ports, o.KubeNode, slices.Contains(s.Nodes[:o.EtcdMembers], o.KubeNode))
	}
	for _, n := range names {
		if s.Ports[n] != 0 {
			continue
		}
		p, err := freePort(s.Ports)
		if err != nil {
			return err
		}
		s.Ports[n] = p
	}
	s.KubeToken = randomHex(16)
	s.MinIOUser = "lab-" + randomHex(4)
	s.MinIOSecret = randomHex(20)
	l.State = s
	return l.saveState()
}

// kubeNodePorts gives the real node's agent and etcd member the ports
// they have on a k3s server, where the agent's defaults look (gRPC 9650,
// health 9651; etcd 2379 and 2380), so `kubectl dr install` needs no port
// flags. Where another program holds one, the node gets a free pair: the
// agent's health port is always the gRPC port + 1, as install renders it.
func kubeNodePorts(ports map[string]int, node string, etcdMember bool) {
	used := map[int]bool{}
	for _, p := range ports {
		used[p] = true
	}
	pair := func(a, b string, first int) {
		if !used[first] && !used[first+1] && portFree(first) && portFree(first+1) {
			ports[a], ports[b] = first, first+1
			used[first], used[first+1] = true, true
			return
		}
		for i := 0; i < 200; i++ {
			p, err := freePort(ports)
			if err == nil && !used[p+1] && portFree(p+1) {
				ports[a], ports[b] = p, p+1
				used[p], used[p+1] = true, true
				return
			}
		}
	}
	pair("agent-"+node, "metrics-"+node, 9650)
	if etcdMember {
		pair("etcd-"+node+"-client", "etcd-"+node+"-peer", 2379)
	}
}

// port returns the named port, picking and recording a free one for a name
// that an older lab state does not have yet.
func (l *Lab) port(name string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.State.Ports[name]; p != 0 {
		return p, nil
	}
	p, err := freePort(l.State.Ports)
	if err != nil {
		return 0, err
	}
	l.State.Ports[name] = p
	return p, l.saveStateLocked()
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveStateLocked()
}

func (l *Lab) saveStateLocked() error {
	data, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(l.statePath(), data, 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// EtcdNodes are the nodes that run an etcd member.
func (l *Lab) EtcdNodes() []string { return l.State.Nodes[:l.State.EtcdMembers] }

// NodeRoot is the directory standing in for a node's /.
func (l *Lab) NodeRoot(node string) string { return filepath.Join(l.Dir, "nodes", node) }

// DataDir is the node's k3s data dir (/var/lib/rancher/k3s).
func (l *Lab) DataDir(node string) string {
	return filepath.Join(l.NodeRoot(node), "var", "lib", "rancher", "k3s")
}

// AgentAddr is the node's agent gRPC address.
func (l *Lab) AgentAddr(node string) string {
	return fmt.Sprintf("127.0.0.1:%d", l.State.Ports["agent-"+node])
}

// Down stops every process the lab started (by its pid files), waiting for
// each to exit. Data stays in the lab dir for the next up.
func (l *Lab) Down(ctx context.Context, log io.Writer) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	stopAll := func(ps []proc) {
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stopped, err := p.stop(l.Dir, 30*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if stopped {
					fmt.Fprintf(log, "stopped %s\n", p.name)
				}
			}()
		}
		wg.Wait()
	}
	// etcd last: the API server and the agents use it until they exit.
	var first, etcd []proc
	for _, p := range l.procs() {
		if strings.HasPrefix(p.name, "etcd-") {
			etcd = append(etcd, p)
		} else {
			first = append(first, p)
		}
	}
	if err := l.downNode(func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) }); err != nil {
		errs = append(errs, err)
	}
	stopAll(first)
	stopAll(etcd)
	return errors.Join(errs...)
}

func (l *Lab) procs() []proc {
	var ps []proc
	for _, n := range l.State.Nodes {
		ps = append(ps, l.proc("agent-"+n))
	}
	// Agents started by StartAgent, also those of an earlier process (a
	// test that kept its lab, then hack/lab down): each has a directory.
	extra := slices.Clone(l.extra)
	if entries, err := os.ReadDir(filepath.Join(l.Dir, "extra-agents")); err == nil {
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(extra, e.Name()) {
				extra = append(extra, e.Name())
			}
		}
	}
	for _, name := range extra {
		p := l.proc(name)
		if strings.HasPrefix(name, "postgres") {
			p.stopSignal = syscall.SIGINT
		}
		ps = append(ps, p)
	}
	pg := l.proc("postgres")
	pg.stopSignal = syscall.SIGINT // PostgreSQL's fast shutdown
	ps = append(ps, l.sqliteProcs()...)
	ps = append(ps, l.proc("kube-apiserver"), l.proc("minio"), l.proc("seaweedfs"), pg)
	for _, n := range l.EtcdNodes() {
		ps = append(ps, l.proc("etcd-"+n))
	}
	return ps
}

// Running names the lab's processes that are alive.
func (l *Lab) Running() []string {
	var names []string
	for _, p := range l.procs() {
		if _, ok := p.pid(l.Dir); ok {
			names = append(names, p.name)
		}
	}
	return names
}

// Env is what `hack/lab env` exports, as KEY=VALUE pairs in a stable order.
func (l *Lab) Env() []string {
	s := l.State
	var agents, endpoints []string
	for _, n := range s.Nodes {
		// The real node's agent is found through the API server.
		if n != s.KubeNode {
			agents = append(agents, n+"="+l.AgentAddr(n))
		}
	}
	for _, n := range l.EtcdNodes() {
		endpoints = append(endpoints, fmt.Sprintf("https://127.0.0.1:%d", s.Ports["etcd-"+n+"-client"]))
	}
	tls := filepath.Join(l.DataDir(s.Nodes[0]), "server", "tls", "etcd")
	env := map[string]string{
		"DR_LAB_DIR":                  l.Dir,
		"PATH":                        strings.Join(append(append([]string{}, s.BinDirs...), os.Getenv("PATH")), ":"),
		"KUBECONFIG":                  filepath.Join(l.Dir, "kubeconfig"),
		"KUBECTL_DR_AGENTS":           strings.Join(agents, ","),
		"KUBECTL_DR_CA":               filepath.Join(l.Dir, "pki", "dr", "ca.crt"),
		"KUBECTL_DR_CERT":             filepath.Join(l.Dir, "pki", "dr", "client.crt"),
		"KUBECTL_DR_KEY":              filepath.Join(l.Dir, "pki", "dr", "client.key"),
		"ETCDCTL_ENDPOINTS":           strings.Join(endpoints, ","),
		"ETCDCTL_CACERT":              filepath.Join(tls, "server-ca.crt"),
		"ETCDCTL_CERT":                filepath.Join(tls, "client.crt"),
		"ETCDCTL_KEY":                 filepath.Join(tls, "client.key"),
		"DR_STORE":                    l.StoreURL(),
		"DR_SNAPSHOT_KEY":             filepath.Join(l.Dir, "pki", "snapshot.key"),
		"DR_S3_ENDPOINT":              fmt.Sprintf("http://127.0.0.1:%d", s.Ports["minio"]),
		"AWS_ACCESS_KEY_ID":           s.MinIOUser,
		"AWS_SECRET_ACCESS_KEY":       s.MinIOSecret,
		"DR_APP_S3_ENDPOINT":          l.AppS3Endpoint(),
		"DR_APP_S3_ACCESS_KEY_ID":     s.AppS3Key,
		"DR_APP_S3_SECRET_ACCESS_KEY": s.AppS3Secret,
		"PGHOST":                      "127.0.0.1",
		"PGPORT":                      fmt.Sprint(s.Ports["postgres"]),
		"PGUSER":                      "postgres",
		"PGDATABASE":                  "postgres",
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// DirectModeVars are what the plugin reads instead of the cluster's
// Secrets: the agents' client certificate, the store and its credentials,
// the snapshot key. A user who ran `kubectl dr install` has none of them.
var DirectModeVars = []string{
	"KUBECTL_DR_CA", "KUBECTL_DR_CERT", "KUBECTL_DR_KEY",
	"DR_STORE", "DR_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DR_SNAPSHOT_KEY",
}

// UserEnv is the environment of a user of a lab with a real node, where
// `kubectl dr install` put the agent: Env without DirectModeVars (set
// empty, so a developer's shell cannot leak them in). The lab's other
// nodes are agent processes, reached directly ($KUBECTL_DR_AGENTS) with
// the client certificate the plugin reads from the cluster. Without a
// real node nothing is installed, and UserEnv is Env.
func (l *Lab) UserEnv() []string {
	env := l.Env()
	if l.State.KubeNode == "" {
		return env
	}
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(DirectModeVars, k) {
			out = append(out, kv)
		}
	}
	for _, k := range DirectModeVars {
		out = append(out, k+"=")
	}
	return out
}

// StopProcess stops one of the lab's processes by name (as in its pid file:
// "etcd-server-3", "agent-server-1", "minio", ...), for fault tests.
func (l *Lab) StopProcess(name string) error {
	for _, p := range l.procs() {
		if p.name == name {
			_, err := p.stop(l.Dir, 30*time.Second)
			return err
		}
	}
	return fmt.Errorf("no lab process named %s", name)
}

// KillProcess SIGKILLs one of the lab's processes by name (as StopProcess
// names them), with no chance to clean up, and waits until it is gone; it
// reports whether the process was running.
func (l *Lab) KillProcess(name string) (bool, error) {
	for _, p := range l.procs() {
		if p.name == name {
			p.stopSignal = syscall.SIGKILL
			return p.stop(l.Dir, 10*time.Second)
		}
	}
	return false, fmt.Errorf("no lab process named %s", name)
}

// StartMinIO starts MinIO again after StopProcess or KillProcess, on its
// data dir and port, and waits until it serves the bucket.
func (l *Lab) StartMinIO(ctx context.Context) error { return l.upMinIO(ctx) }

// Restart starts whatever is not running, as `hack/lab up` does.
func (l *Lab) Restart(ctx context.Context) error {
	_, err := Up(ctx, Options{Dir: l.Dir, Root: l.Root, EtcdMembers: l.State.EtcdMembers, Nodes: len(l.State.Nodes), KubeNode: l.State.KubeNode, EtcdRestore: l.State.EtcdRestore, Log: l.log})
	return err
}

// PauseProcess SIGSTOPs one of the lab's processes by name, freezing it
// where it is (a fault test looks at what it left half done, then kills
// it with KillProcess, which a stopped process obeys).
func (l *Lab) PauseProcess(name string) error { return l.signalProcess(name, syscall.SIGSTOP) }

// ResumeProcess SIGCONTs a process PauseProcess froze.
func (l *Lab) ResumeProcess(name string) error { return l.signalProcess(name, syscall.SIGCONT) }

func (l *Lab) signalProcess(name string, sig syscall.Signal) error {
	for _, p := range l.procs() {
		if p.name != name {
			continue
		}
		pid, ok := p.pid(l.Dir)
		if !ok {
			return fmt.Errorf("lab process %s is not running", name)
		}
		return syscall.Kill(pid, sig)
	}
	return fmt.Errorf("no lab process named %s", name)
}

// hostActionsLog is where the restore's host commands (lab start) note
// when they ran, for tests that check what was in place by then.
func (l *Lab) hostActionsLog() string { return filepath.Join(l.Dir, "host-actions.log") }

// LogHostAction notes that the host command verb ran for name, now.
func (l *Lab) LogHostAction(verb, name string) error {
	f, err := os.OpenFile(l.hostActionsLog(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), verb, name)
	return errors.Join(err, f.Close())
}

// HostAction is one host command a restore ran (lab start).
type HostAction struct {
	At         time.Time
	Verb, Name string
}

// HostActions are the host commands run since the lab came up.
func (l *Lab) HostActions() ([]HostAction, error) {
	data, err := os.ReadFile(l.hostActionsLog())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []HostAction
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", l.hostActionsLog(), line, err)
		}
		out = append(out, HostAction{At: at, Verb: f[1], Name: f[2]})
	}
	return out, nil
}
