package e2e

import (
	"os"
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

// kubectlDR runs the built plugin as a user does after install: with the
// lab's kubeconfig (and its process agents' addresses), plus extra.
func kubectlDR(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	return runBin(t, theLab.Bin.KubectlDR, extraEnv, args...)
}

func runBin(t *testing.T, bin string, extraEnv []string, args ...string) result {
	t.Helper()
	r := labtest.Run(t, theLab, 2*time.Minute, bin, extraEnv, args...)
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
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

// directMode is the environment of a test of direct mode: the store, its
// credentials, the agents' client certificate and the snapshot key given
// to the plugin instead of read from the cluster (lab.DirectModeVars).
func directMode(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, k := range lab.DirectModeVars {
		env = append(env, k+"="+labEnv(t, k))
	}
	return env
}
