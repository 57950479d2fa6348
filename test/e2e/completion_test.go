package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// Shell completion as a user gets it: kubectl's own __complete (what its
// bash/zsh scripts call) finds the kubectl_complete-dr the release archives
// ship, which asks kubectl-dr; the candidates come from the live cluster.
func TestCompletionThroughKubectl(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script, err := os.ReadFile(filepath.Join(root, "krew", "kubectl_complete-dr"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubectl_complete-dr"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + labEnv(t, "PATH")}
	complete := func(args ...string) []string {
		t.Helper()
		r := runBin(t, theLab.Bin.Kubectl, env, append([]string{"__complete", "dr"}, args...)...)
		if r.code != 0 {
			t.Fatalf("kubectl __complete dr %v: exit %d\n%s", args, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		// The last line is cobra's directive: 4 is "no file names".
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("kubectl __complete dr %v: directive %s, want :4 (no file names)\n%s", args, last, r.stdout)
		}
		return lines[:len(lines)-1]
	}

	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "complete-me", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save: exit %d\n%s", r.code, r.stderr)
	}
	name := snapshotJSON(t, r).Name
	t.Cleanup(func() { kubectlDR(t, nil, "etcd", "snapshot", "rm", name) })

	if got := complete("etcd", "snapshot", "describe", ""); !slices.Contains(got, name) {
		t.Errorf("etcd snapshot describe <TAB> offers %v, want %s among them", got, name)
	}
	if got := complete("etcd", "snapshot", "rm", name, "complete-me"); slices.Contains(got, name) {
		t.Errorf("etcd snapshot rm %s complete-me<TAB> offers %s again: %v", name, name, got)
	}
	if got := complete("etcd", "snapshot", "describe", name, ""); len(got) != 0 {
		t.Errorf("describe takes one name; a second <TAB> offers %v", got)
	}
	if got := complete("etcd", "restore", "complete-me"); !slices.Equal(got, []string{name}) {
		t.Errorf("etcd restore complete-me<TAB> offers %v, want just %s", got, name)
	}
	nodes := complete("status", "--node", "")
	for _, n := range theLab.State.Nodes {
		if !slices.Contains(nodes, n) {
			t.Errorf("status --node <TAB> offers %v, want %s among them", nodes, n)
		}
	}
	if got := complete("wal", "status", ""); !slices.Contains(got, lab.WALSource) {
		t.Errorf("wal status <TAB> offers %v, want the lab's WAL source %s", got, lab.WALSource)
	}
}
