// Package restore tests etcd restores end to end on a lab of their own:
// they stop every etcd member, which the shared e2e lab cannot afford.
package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

var theLab *lab.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{EtcdMembers: 3, Nodes: 3, EtcdRestore: true}, func(l *lab.Lab) { theLab = l }))
}

type result struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), theLab.Env()...)
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

func kubectlDR(t *testing.T, args ...string) result {
	t.Helper()
	return runBin(t, theLab.Bin.KubectlDR, args...)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := runBin(t, theLab.Bin.Kubectl, args...)
	if r.code != 0 {
		t.Fatalf("kubectl %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}
