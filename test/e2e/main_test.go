// Package e2e drives the built kubectl-dr and dr-agent binaries against the
// lab: real etcd, kube-apiserver, MinIO, PostgreSQL and restic. TestMain
// brings one lab up for the whole package and takes it down at the end.
package e2e

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

var theLab *lab.Lab

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the lab's end-to-end tests in -short mode")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
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
	ctx := context.Background()
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{Dir: dir, Root: root, EtcdMembers: 3, Nodes: 4, KubeNode: "server-1", Log: os.Stderr})
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
	theLab = l
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

// result is what a run of a binary left behind.
type result struct {
	stdout, stderr string
	code           int
}

// kubectlDR runs the built plugin with the lab's environment plus extra.
func kubectlDR(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	return runBin(t, theLab.Bin.KubectlDR, extraEnv, args...)
}

func runBin(t *testing.T, bin string, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), theLab.Env()...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return r
}

// labEnv is one variable of `hack/lab env`.
func labEnv(t *testing.T, key string) string {
	t.Helper()
	for _, kv := range theLab.Env() {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s is not in the lab's environment", key)
	return ""
}
