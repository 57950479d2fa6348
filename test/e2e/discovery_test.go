package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// server-1 is a real Kubernetes node (kubelet + containerd) running the
// agent as the DaemonSet's pod: without KUBECTL_DR_AGENTS, kubectl dr finds
// it through the API server and talks to it over a port-forward.
var throughAPIServer = []string{"KUBECTL_DR_AGENTS="}

func TestStatusAndSnapshotThroughPortForward(t *testing.T) {
	ensureRecoveryPoints(t)
	r := kubectlDR(t, throughAPIServer, "status", "-o", "json")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	items := statusJSON(t, r).Items
	if len(items) != 1 || items[0].Node != "server-1" || !items[0].Reachable || !strings.HasPrefix(items[0].Via, "pod dr-system/dr-agent-") {
		t.Fatalf("status through the API server = %+v, want server-1 reached via its agent pod", items)
	}
	if e := items[0].Etcd; e == nil || !e.Healthy {
		t.Errorf("server-1 etcd through the pod: %+v", e)
	}

	r = kubectlDR(t, throughAPIServer, "etcd", "snapshot", "save", "--node", "server-1", "--name", "via-pod", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot through the pod: exit %d\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	if !snap.Uploaded || fileSHA256(t, filepath.Join(theLab.DataDir("server-1"), "server", "db", "snapshots", snap.Name)) != snap.SHA256 {
		t.Errorf("snapshot via the pod: uploaded %v; the local copy must be on server-1's data dir", snap.Uploaded)
	}
}

func TestDeletedAgentPodComesBack(t *testing.T) {
	before := strings.TrimSpace(runKubectl(t, "-n", "dr-system", "get", "pods", "-l", "app.kubernetes.io/name=dr-agent", "-o", "jsonpath={.items[0].metadata.name}"))
	runKubectl(t, "-n", "dr-system", "delete", "pod", before, "--wait=true", "--timeout=60s")

	deadline := time.Now().Add(90 * time.Second)
	for {
		r := kubectlDR(t, throughAPIServer, "status", "-o", "json")
		if r.code == 0 {
			items := statusJSON(t, r).Items
			if len(items) == 1 && items[0].Reachable && !strings.HasSuffix(items[0].Via, "/"+before) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DaemonSet's new pod was not reported Ready within 90 s; last status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(time.Second)
	}
}

// A node whose agent pod cannot become ready (a Node object with no
// kubelet: the DaemonSet's pod for it stays Pending) is reported as such at
// once, not waited on, and the healthy node is still reported.
func TestAgentPodNotReadyIsReported(t *testing.T) {
	node := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(node, []byte(`apiVersion: v1
kind: Node
metadata:
  name: ghost-node
`), 0o644); err != nil {
		t.Fatal(err)
	}
	runKubectl(t, "apply", "-f", node)
	// Room for pods, so the DaemonSet's pod is bound to it (and stays
	// Pending: no kubelet will ever run it).
	runKubectl(t, "patch", "node", "ghost-node", "--subresource=status", "--type=merge", "-p",
		`{"status":{"capacity":{"pods":"10","cpu":"1","memory":"1Gi"},"allocatable":{"pods":"10","cpu":"1","memory":"1Gi"}}}`)
	t.Cleanup(func() {
		runKubectl(t, "delete", "node", "ghost-node", "--wait=true", "--timeout=60s")
		// The DaemonSet may have made ghost-node another pod while the node
		// went: once it is gone, no pod but server-1's may stay behind (an
		// unbound one would show as an unready agent in every later test).
		deadline := time.Now().Add(60 * time.Second)
		for {
			runKubectl(t, "-n", "dr-system", "delete", "pods", "--field-selector", "spec.nodeName!=server-1", "--force", "--grace-period=0", "--wait=false")
			time.Sleep(2 * time.Second)
			left := strings.TrimSpace(runKubectl(t, "-n", "dr-system", "get", "pods", "--field-selector", "spec.nodeName!=server-1", "-o", "name"))
			if left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("agent pods left behind by ghost-node: %s", left)
				break
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for strings.TrimSpace(runKubectl(t, "-n", "dr-system", "get", "pods", "--field-selector", "spec.nodeName=ghost-node", "-o", "name")) == "" {
		if time.Now().After(deadline) {
			t.Fatal("the DaemonSet made no pod for ghost-node in 60 s")
		}
		time.Sleep(500 * time.Millisecond)
	}

	start := time.Now()
	r := kubectlDR(t, throughAPIServer, "status")
	if r.code != 3 {
		t.Fatalf("exit code %d, want 3; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("status took %s with a stuck pod", took)
	}
	rows := tableRows(r.stdout)
	if got := rows["ghost-node"]; len(got) < 2 || got[1] != "Unreachable" {
		t.Errorf("ghost-node row = %v, want Unreachable", got)
	}
	if got := rows["server-1"]; len(got) < 2 || got[1] != "Ready" {
		t.Errorf("server-1 row = %v, want Ready (the healthy pod is still reported)", got)
	}
	if !regexp.MustCompile(`agent pod dr-system/dr-agent-\w+ on node ghost-node is not ready \(phase Pending\)`).MatchString(r.stderr) {
		t.Errorf("stderr does not say the pod is not ready:\n%s", r.stderr)
	}
}
