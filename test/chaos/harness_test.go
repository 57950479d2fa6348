package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/faultproxy"
)

// harness is the lab as the chaos run drives it: agents behind the fault
// proxy, and what the run knows the nodes and the store should hold.
type harness struct {
	t     *testing.T
	l     *lab.Lab
	proxy *faultproxy.Proxy
	store objstore.Store
	nodes []string
	cfgs  map[string]agentconfig.Config
	rep   *report
	// iter is the step being run, for messages.
	iter int

	// roots are the trees of files on each node that backups take.
	roots map[string]string
	// sets maps a Completed backup set this run made to every file's
	// sha256 at the time it was taken; lastSet is the newest.
	sets    map[string]map[string]string
	lastSet string

	// What earlier checks verified, so each check reads only what is new
	// (the final check reads everything again).
	verifiedSnaps map[string]string
	verifiedSets  map[string]bool
	verifiedBase  map[string]bool
	walChecked    string
	walFirst      string

	stopBench func()
}

// agentName is the lab process name of a node's chaos agent.
func agentName(node string) string { return "chaos-" + node }

// newHarness replaces the lab's agents with ones that reach MinIO through
// a fault proxy.
func newHarness(t *testing.T, rep *report) *harness {
	t.Helper()
	l := theLab
	h := &harness{
		t: t, l: l, rep: rep, nodes: l.State.Nodes,
		cfgs: map[string]agentconfig.Config{}, roots: map[string]string{},
		sets: map[string]map[string]string{}, verifiedSnaps: map[string]string{},
		verifiedSets: map[string]bool{}, verifiedBase: map[string]bool{},
	}
	minio := strings.TrimPrefix(h.env("DR_S3_ENDPOINT"), "http://")
	proxy, err := faultproxy.New(minio)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	h.proxy = proxy
	store, err := objstore.Open(objstore.Config{URL: l.StoreURL(), Endpoint: "http://" + minio, AccessKey: l.State.MinIOUser, SecretKey: l.State.MinIOSecret})
	if err != nil {
		t.Fatal(err)
	}
	h.store = store.Sub(l.State.ClusterID)
	for _, n := range h.nodes {
		if err := l.StopProcess("agent-" + n); err != nil {
			t.Fatal(err)
		}
		cfg, err := l.AgentConfig(n)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store.Endpoint = proxy.URL()
		cfg.MetricsAddress = "off"
		cfg.Etcd.Schedule = "off"
		h.cfgs[n] = cfg
		h.startAgent(n)
	}
	return h
}

// env is one variable of the lab's environment.
func (h *harness) env(key string) string {
	for _, kv := range h.l.Env() {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	h.t.Fatalf("%s is not in the lab's environment", key)
	return ""
}

// startAgent starts node's agent and waits until it listens; a file
// restore it was killed in is undone by then.
func (h *harness) startAgent(node string) {
	h.t.Helper()
	if err := h.l.StartAgent(context.Background(), agentName(node), h.cfgs[node]); err != nil {
		h.t.Fatalf("start %s's agent: %v", node, err)
	}
}

// ensureUp starts whatever a fault left stopped: an agent or MinIO, and
// the network.
func (h *harness) ensureUp() {
	h.t.Helper()
	h.proxy.SetDown(false)
	running := map[string]bool{}
	for _, name := range h.l.Running() {
		running[name] = true
	}
	if !running["minio"] {
		if err := h.l.StartMinIO(context.Background()); err != nil {
			h.t.Fatalf("start MinIO: %v", err)
		}
	}
	for _, n := range h.nodes {
		if !running[agentName(n)] {
			h.startAgent(n)
		}
	}
}

// result is what a run of a binary left behind.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	// killed: the run was SIGKILLed by the fault; timedOut: it outlived
	// its time.
	killed, timedOut bool
	took             time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("kubectl dr %s: exit %d after %s\n%s%s", strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// opTimeout bounds every command: one that runs longer hangs, which is a
// violation of its own.
const opTimeout = 3 * time.Minute

// watched is a command's output, watched for an anchor.
type watched struct {
	mu     *sync.Mutex
	buf    bytes.Buffer
	anchor *regexp.Regexp
	seen   chan struct{}
	once   *sync.Once
}

func (w *watched) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(b)
	if w.anchor != nil && w.anchor.Match(w.buf.Bytes()) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// plugin is a started kubectl-dr.
type plugin struct {
	cmd    *exec.Cmd
	stdout *watched
	stderr *watched
	// anchored is closed when the output shows the anchor.
	anchored chan struct{}
	start    time.Time
	args     []string
	killed   bool
	mu       sync.Mutex
	done     chan struct{}
	res      result
}

// startPlugin runs kubectl-dr with the lab's environment; anchor (may be
// nil) is watched for in its output.
func (h *harness) startPlugin(anchor *regexp.Regexp, args ...string) *plugin {
	h.t.Helper()
	p := &plugin{args: args, done: make(chan struct{}), start: time.Now(), anchored: make(chan struct{})}
	var mu sync.Mutex
	var once sync.Once
	p.stdout = &watched{mu: &mu, anchor: anchor, seen: p.anchored, once: &once}
	p.stderr = &watched{mu: &mu, anchor: anchor, seen: p.anchored, once: &once}
	p.cmd = exec.Command(h.l.Bin.KubectlDR, args...)
	p.cmd.Env = append(os.Environ(), h.l.Env()...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		h.t.Fatalf("start kubectl-dr %v: %v", args, err)
	}
	go func() {
		defer close(p.done)
		timer := time.AfterFunc(opTimeout, func() { p.cmd.Process.Kill() })
		err := p.cmd.Wait()
		timedOut := !timer.Stop()
		p.res = result{args: args, stdout: p.stdout.String(), stderr: p.stderr.String(), took: time.Since(p.start)}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.res.code = ee.ExitCode()
		}
		p.mu.Lock()
		p.res.killed = p.killed
		p.mu.Unlock()
		p.res.timedOut = timedOut && !p.res.killed
	}()
	return p
}

// kill SIGKILLs the plugin if it still runs; it reports whether it did.
func (p *plugin) kill() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	return p.cmd.Process.Signal(syscall.SIGKILL) == nil
}

func (p *plugin) wait() result {
	<-p.done
	return p.res
}

// run runs kubectl-dr to its end.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	return h.startPlugin(nil, args...).wait()
}

// nodeStateDir is the agent's state directory on node.
func (h *harness) nodeStateDir(node string) string { return h.cfgs[node].StateDir }

// treeRoot is where the run keeps node's files: under the node's
// local-path storage, which the agents back up by default.
func (h *harness) treeRoot(node string) string {
	return filepath.Join(h.l.DataDir(node), "storage", "chaos")
}
