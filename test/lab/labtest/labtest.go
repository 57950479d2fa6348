// Package labtest is what the lab's test packages share: one lab per
// package, up before the tests and down after them with nothing left
// running, and the built binaries run with its environment.
package labtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// Main brings a lab up with o (Dir and Root are filled in), hands it to
// use, runs the tests and takes the lab down; it returns the exit code.
// -short skips the package; DR_E2E_KEEP_LAB keeps the lab running.
func Main(m *testing.M, o lab.Options, use func(*lab.Lab)) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the lab's tests in -short mode")
		return 0
	}
	root, err := filepath.Abs("../..")
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
	return m.Run()
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
	cmd.Env = append(append(os.Environ(), l.Env()...), extraEnv...)
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
