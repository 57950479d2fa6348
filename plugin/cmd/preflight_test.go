package cmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// A restore whose server token did not make the snapshot's k3s bootstrap
// data is refused before anything stops, with the row and k3s's own
// words, on a real agent of a k3s server on SQLite: the stop command never
// runs. --skip-preflight token lets it past.
func TestEtcdRestoreRefusedByPreflightWhenTheTokenDiffers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dataDir := t.TempDir()
	oldToken := "K10aaaa::server:the-old-clusters-secret\n"
	boot, err := k3sboot.Encrypt(oldToken, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	kineServer(t, dataDir, map[string]string{"/registry/namespaces/kept": "ns", k3sboot.Key(oldToken): string(boot)})
	if err := os.WriteFile(filepath.Join(dataDir, "server", "token"), []byte("K10bbbb::server:another-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stopped := filepath.Join(t.TempDir(), "stopped")
	e.agent("server-1", func(c *agentconfig.Config) {
		c.DataDir = dataDir
		c.Restore.StopCommand = []string{"touch", stopped}
		c.Restore.StartCommand = []string{"true"}
	})
	r := e.run("datastore", "snapshot", "save", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save: %s", r)
	}
	var snap printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil {
		t.Fatal(err)
	}

	r = e.run("datastore", "restore", snap.Name, "--yes")
	if r.code != 1 {
		t.Errorf("restore with another token: exit %d, want 1\n%s", r.code, r)
	}
	for _, want := range []string{"preflight failed, nothing was stopped", "node server-1: token:", k3sboot.RefusedMessage, k3sboot.Key(oldToken), "--token-from-store", "--skip-preflight CHECK"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q\n%s", want, r)
		}
	}
	if !rowMatches(r.stdout, "server-1", "token", "failed") || !rowMatches(r.stdout, "server-1", "disk", "ok") {
		t.Errorf("no preflight rows for server-1's token (failed) and disk (ok):\n%s", r.stdout)
	}
	if _, err := os.Stat(stopped); err == nil {
		t.Error("the stop command ran: the restore went past a failed preflight")
	}

	r = e.run("datastore", "restore", snap.Name, "--dry-run", "--skip-preflight", "token")
	if r.code != 0 || !rowMatches(r.stdout, "server-1", "token", "failed (skipped)") {
		t.Errorf("--skip-preflight token --dry-run: want exit 0 and the row marked skipped\n%s", r)
	}
	if r := e.run("datastore", "restore", snap.Name, "--skip-preflight", "tokens"); r.code != 2 || !strings.Contains(r.stderr, "want one of token, k3s-version, encryption-config, disk") {
		t.Errorf("--skip-preflight tokens: %s", r)
	}
}

// rowMatches reports whether a line of out has the fields in order.
func rowMatches(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), strings.Join(fields, " ")) {
			return true
		}
	}
	return false
}
