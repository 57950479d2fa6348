package sqlitelab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// A k3s server on SQLite recovered onto a new host: the old host is gone
// (k3s stopped, state.db and its WAL files and the server token removed;
// the same store), and kubectl dr recover in direct mode, with no API
// server, checks the snapshot against the new host, puts the token kept
// with the snapshot back, the snapshot in place of state.db, starts k3s
// and waits for its API server, which serves the snapshot's objects.
func TestSQLiteRecoverOntoANewHost(t *testing.T) {
	kubectl(t, "create", "namespace", "sq-recover")
	kubectl(t, "-n", "sq-recover", "create", "configmap", "kept", "--from-literal=v=1")
	snap := saveSnapshot(t, "recover-new-host")
	kubectl(t, "-n", "sq-recover", "create", "configmap", "after", "--from-literal=v=1")

	tokenPath := filepath.Join(theLab.DataDir(lab.SQLiteNode), "server", "token")
	token, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	// The old host is gone.
	if err := theLab.StopSQLiteK3s(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{server.StateDB, server.StateDB + "-wal", server.StateDB + "-shm", tokenPath} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	extra := append(theLab.Env(), env(t)...)
	args := []string{"recover", "--latest", "--yes", "--cluster-id", server.ClusterID, "--skip-layer", "files", "--skip-layer", "postgres", "--skip-layer", "bucket"}
	r := labtest.Run(t, theLab, 5*time.Minute, theLab.Bin.KubectlDR, extra, args...)
	t.Logf("kubectl dr %s:\n%s\n%s", strings.Join(args, " "), r.Stderr, r.Stdout)
	if r.Code != 0 {
		t.Fatalf("recover: exit %d, want 0", r.Code)
	}
	for _, fields := range [][]string{
		{"etcd", lab.SQLiteNode, snap.Name},
		// The lab's kine holds no k3s bootstrap data: the token row is
		// skipped, not failed.
		{lab.SQLiteNode, "token", "skipped"},
		{lab.SQLiteNode, "disk", "ok"},
	} {
		if !hasRow(r.Stdout, fields...) {
			t.Errorf("no row %v in the output", fields)
		}
	}
	for _, want := range []string{"put-bootstrap-files done", "swap-state-db done", "wait-healthy done", "kine serving the restored state.db on " + lab.SQLiteNode, "RTO "} {
		if !strings.Contains(r.Stdout+r.Stderr, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// What a user checks: the snapshot's objects through the API server,
	// nothing of after it, the token back.
	if out := kubectl(t, "-n", "sq-recover", "get", "configmap", "kept", "-o", "jsonpath={.data.v}"); out != "1" {
		t.Errorf("configmap sq-recover/kept after recover: %q, want v=1", out)
	}
	if r := labtest.Run(t, theLab, time.Minute, theLab.Bin.Kubectl, env(t), "-n", "sq-recover", "get", "configmap", "after"); r.Code == 0 {
		t.Errorf("configmap sq-recover/after, made after the snapshot, is there")
	}
	if got, err := os.ReadFile(tokenPath); err != nil || !bytes.Equal(got, token) {
		t.Errorf("server/token after recover: %q %v, want the snapshot's token back", got, err)
	}
}

// hasRow reports whether a line of out has the fields in order at its
// start.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), strings.Join(fields, " ")) {
			return true
		}
	}
	return false
}
