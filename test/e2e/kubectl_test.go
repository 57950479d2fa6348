package e2e

import "testing"

// runKubectl runs the lab's kubectl (built at the API server's version).
func runKubectl(t *testing.T, args ...string) string {
	t.Helper()
	r := runBin(t, theLab.Bin.Kubectl, nil, args...)
	if r.code != 0 {
		t.Fatalf("kubectl %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}
