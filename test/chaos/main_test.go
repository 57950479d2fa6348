package chaos

import (
	"flag"
	"os"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

var theLab *lab.Lab

// One etcd member (restore plans stop it) and a worker node: every
// operation has a node to break, and the lab comes up in seconds. In
// -short mode only the schedule's test runs, without a lab.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(labtest.Main(m, lab.Options{EtcdMembers: 1, Nodes: 2, EtcdRestore: agentconfig.FlavorEtcd}, func(l *lab.Lab) { theLab = l }))
}
