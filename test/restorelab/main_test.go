package restorelab

import (
	"os"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

var theLab *lab.Lab

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{EtcdMembers: 3, Nodes: 3, EtcdRestore: "etcd"}, func(l *lab.Lab) { theLab = l }))
}

func runBin(t *testing.T, bin string, args ...string) labtest.Result {
	t.Helper()
	return labtest.Run(t, theLab, 5*time.Minute, bin, nil, args...)
}

func kubectlDR(t *testing.T, args ...string) labtest.Result {
	t.Helper()
	return runBin(t, theLab.Bin.KubectlDR, args...)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return labtest.Kubectl(t, theLab, args...)
}
