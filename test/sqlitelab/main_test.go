package sqlitelab

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

var (
	theLab *lab.Lab
	server *lab.SQLiteServer
)

func TestMain(m *testing.M) {
	os.Exit(labtest.Main(m, lab.Options{EtcdMembers: 1, Nodes: 1}, func(l *lab.Lab) {
		theLab = l
		start := time.Now()
		s, err := l.UpSQLite(context.Background())
		if err != nil {
			// The tests find server nil and fail with this.
			fmt.Fprintln(os.Stderr, "sqlite server up:", err)
			return
		}
		fmt.Fprintf(os.Stderr, "sqlite server up in %s\n", time.Since(start).Round(time.Millisecond))
		server = s
	}))
}

// env points kubectl and the plugin at the SQLite server: its kubeconfig,
// and its agent only.
func env(t *testing.T) []string {
	t.Helper()
	if server == nil {
		t.Fatal("the lab's SQLite server did not come up (see the log above)")
	}
	return []string{"KUBECONFIG=" + server.Kubeconfig, "KUBECTL_DR_AGENTS=" + server.Agent}
}

func kubectlDR(t *testing.T, args ...string) labtest.Result {
	t.Helper()
	return labtest.Run(t, theLab, 5*time.Minute, theLab.Bin.KubectlDR, env(t), args...)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := labtest.Run(t, theLab, 2*time.Minute, theLab.Bin.Kubectl, env(t), args...)
	if r.Code != 0 {
		t.Fatalf("kubectl %v: exit %d: %s", args, r.Code, r.Stderr)
	}
	return r.Stdout
}
