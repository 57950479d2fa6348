package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// Main brings a lab up with o (Dir and Root are filled in), hands it to
// use, runs the tests and takes the lab down; it returns the exit code.
// -short skips the package; DR_E2E_KEEP_LAB keeps the lab running. The
// run fails when a secret of the lab shows on a command line or in a log
// (secrets.go).
func Main(m *testing.M, o lab.Options, use func(*lab.Lab)) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the lab's tests in -short mode")
		return 0
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "drlab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o.Dir, o.Root, o.Log = dir, root, os.Stderr
	start := time.Now()
	l, err := lab.Up(context.Background(), o)
	if l != nil && os.Getenv("DR_E2E_KEEP_LAB") != "" {
		fmt.Fprintf(os.Stderr, "keeping the lab in %s (DR_E2E_KEEP_LAB): hack/lab down --dir %s\n", dir, dir)
	} else if l != nil {
		defer func() {
			if err := tearDown(l, dir); err != nil {
				fmt.Fprintln(os.Stderr, "lab teardown:", err)
			}
		}()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab up:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "lab up in %s\n", time.Since(start).Round(time.Millisecond))
	use(l)
	watch := watchSecrets(l)
	code := m.Run()
	if found := watch.Findings(); len(found) > 0 {
		fmt.Fprintf(os.Stderr, "--- FAIL: a secret of the lab is where no secret may be (checked by labtest for every run):\n  %s\n", strings.Join(found, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// moduleRoot is the repository root: the test's directory or the nearest
// one above it holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// tearDown stops the lab and fails the run if any process started from the
// lab dir is still alive afterwards.
func tearDown(l *lab.Lab, dir string) error {
	start := time.Now()
	if err := l.Down(context.Background(), os.Stderr); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "lab down in %s\n", time.Since(start).Round(time.Millisecond))
	if left := lab.ProcessesUnder(dir); len(left) > 0 {
		return fmt.Errorf("processes left behind after down: %s", strings.Join(left, "; "))
	}
	return os.RemoveAll(dir)
}

// Result is what a run of a binary left behind.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs bin with the lab's environment plus extraEnv, for at most
// timeout; a binary that cannot be started fails the test.
func Run(t *testing.T, l *lab.Lab, timeout time.Duration, bin string, extraEnv []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// The plugin runs as a user runs it after install: with the
	// kubeconfig, nothing of the lab's direct-mode settings, unless the
	// test gives them in extraEnv.
	env := l.Env()
	if bin == l.Bin.KubectlDR {
		env = l.UserEnv()
	}
	cmd.Env = append(append(os.Environ(), env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return r
}

// Kubectl runs kubectl against the lab and fails the test on a non-zero
// exit; it returns stdout.
func Kubectl(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	r := Run(t, l, 2*time.Minute, l.Bin.Kubectl, nil, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl %v: exit %d: %s", args, r.Code, r.Stderr)
	}
	return r.Stdout
}

// SaveSnapshot takes an etcd snapshot named name with kubectl dr.
func SaveSnapshot(t *testing.T, l *lab.Lab, name string) printers.EtcdSnapshot {
	t.Helper()
	r := Run(t, l, 5*time.Minute, l.Bin.KubectlDR, nil, "etcd", "snapshot", "save", "--name", name, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.Code, r.Stderr)
	}
	var snap printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.Stdout), &snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// WaitConfigMaps waits until the namespace's ConfigMaps (but the CA bundle
// kube-controller-manager adds) are exactly want: after a restore the API
// server's caches relist; they get 90 s.
func WaitConfigMaps(t *testing.T, l *lab.Lab, ns string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := strings.Fields(Kubectl(t, l, "-n", ns, "get", "configmaps", "--field-selector", "metadata.name!=kube-root-ca.crt", "-o", "jsonpath={.items[*].metadata.name}"))
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("configmaps in %s: %v, want %v", ns, got, want)
		}
		time.Sleep(2 * time.Second)
	}
}

// RestartAPIServer stops the lab's kube-apiserver and starts it again.
func RestartAPIServer(t *testing.T, l *lab.Lab) {
	t.Helper()
	if err := l.StopProcess("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	if err := l.Restart(t.Context()); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
}

// UseRestoreFlavor has the etcd members' agents restore the given way for
// the rest of the test, and puts the lab's flavour back after it.
func UseRestoreFlavor(t *testing.T, l *lab.Lab, flavor string) {
	t.Helper()
	before := l.State.EtcdRestore
	if err := l.SetRestoreFlavor(t.Context(), flavor); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context() is done by the time cleanups run.
		if err := l.SetRestoreFlavor(context.Background(), before); err != nil {
			t.Errorf("back to the %s flavour: %v", before, err)
		}
	})
}
