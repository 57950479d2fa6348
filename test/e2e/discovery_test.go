package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without --agent, kubectl dr finds agent pods through the API server. The
// lab has no kubelet yet, so a pod stays Pending: it must be reported as not
// ready, not waited on.
func TestStatusFindsAgentPodsThroughTheAPIServer(t *testing.T) {
	discover := []string{"KUBECTL_DR_AGENTS="}

	r := kubectlDR(t, discover, "status")
	if r.code != 1 || !strings.Contains(r.stderr, "no dr-agent pods found in namespace dr-system") {
		t.Fatalf("before install: exit %d, stderr %q; want 1 and no pods found", r.code, r.stderr)
	}

	// The manifests apply to a real API server as they are.
	runKubectl(t, "apply", "-k", filepath.Join(theLab.Root, "manifests"))

	pod := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(pod, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: dr-agent-test
  namespace: dr-system
  labels: {app.kubernetes.io/name: dr-agent}
spec:
  nodeName: server-1
  serviceAccountName: dr-agent
  containers:
  - {name: agent, image: dr-agent:lab}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	runKubectl(t, "apply", "-f", pod)
	t.Cleanup(func() { runKubectl(t, "delete", "-f", pod, "--wait=false") })

	r = kubectlDR(t, discover, "status")
	if r.code != 3 {
		t.Fatalf("exit code %d, want 3; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := tableRows(r.stdout)["server-1"]; len(got) < 2 || got[1] != "Unreachable" {
		t.Errorf("server-1 row = %v, want Unreachable", got)
	}
	if want := "agent pod dr-system/dr-agent-test on node server-1 is not ready (phase Pending)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not say the pod is not ready:\n%s", r.stderr)
	}
}
