package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// runKubectl runs the lab's kubectl (built at the API server's version).
func runKubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := runBin(t, theLab.Bin.Kubectl, nil, args...)
	if r.code != 0 {
		t.Fatalf("kubectl %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// applyManifest applies YAML through the lab's kubectl.
func applyManifest(t *testing.T, yaml string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	runKubectl(t, "apply", "-f", p)
}
