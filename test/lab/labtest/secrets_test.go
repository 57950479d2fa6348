package labtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The watch must catch what it is there to catch: a secret on a
// short-lived process's command line and one in a log, and nothing in a
// file that is no log.
func TestSecretWatchFindsSecretsOnCommandLinesAndInLogs(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cr3t-0123456789abcdef"
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "agent-x.log"), []byte("level=INFO msg=upload key="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.db"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startWatch(map[string]string{"the test's secret": secret, "another secret": "never-shown-anywhere-0000"}, dir)
	// A process that lives a few samples long.
	if out, err := exec.Command("sh", "-c", "sleep 0.2", "sh", "--password="+secret).CombinedOutput(); err != nil {
		t.Fatalf("sh: %v %s", err, out)
	}
	time.Sleep(2 * sampleEvery)
	found := w.Findings()
	want := []string{"the test's secret in the log " + filepath.Join(dir, "logs", "agent-x.log"), "the test's secret on the command line of sh"}
	if len(found) != 2 || found[0] != want[0] || !strings.HasPrefix(found[1], want[1]) {
		t.Fatalf("found %q, want %q", found, want)
	}
}
