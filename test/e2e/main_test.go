// Package e2e drives the built kubectl-dr and dr-agent binaries against the
// lab: real etcd, kube-apiserver, MinIO, PostgreSQL and restic. TestMain
// brings one lab up for the whole package and takes it down at the end.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

var theLab *lab.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{EtcdMembers: 3, Nodes: 4, KubeNode: "server-1"}, func(l *lab.Lab) { theLab = l }))
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
