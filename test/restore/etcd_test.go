package restore

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Three kubeadm-style etcd members under the lab's kube-apiserver: a
// restore with one agent unreachable stops nothing; then the restore brings
// the API back with the snapshot's objects, the three members in one
// healthy cluster past the snapshot's revision, the old data dirs aside.
func TestEtcdRestoreThreeMembers(t *testing.T) {
	ns := "restore-e2e"
	kubectl(t, "create", "namespace", ns)
	for _, cm := range []string{"cm-a", "cm-b"} {
		kubectl(t, "-n", ns, "create", "configmap", cm, "--from-literal=v=1")
	}
	r := kubectlDR(t, "etcd", "snapshot", "save", "--name", "before-restore", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.Code, r.Stderr)
	}
	var snap printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.Stdout), &snap); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "-n", ns, "delete", "configmap", "cm-a")
	kubectl(t, "-n", ns, "create", "configmap", "cm-c", "--from-literal=v=1")
	kubectl(t, "create", "namespace", "after-snapshot")

	t.Run("an unreachable agent stops nothing", func(t *testing.T) {
		if err := theLab.StopProcess("agent-server-3"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := theLab.Restart(t.Context()); err != nil {
				t.Fatalf("restart the agent: %v", err)
			}
		}()
		r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
		if r.Code == 0 || !strings.Contains(r.Stderr, "server-3") || !strings.Contains(r.Stderr, "nothing was stopped") {
			t.Errorf("restore with server-3's agent down: exit %d\n%s\nwant a failure naming server-3, nothing stopped", r.Code, r.Stderr)
		}
		for _, n := range theLab.EtcdNodes() {
			if st := etcdsnap.Status(t.Context(), theLab.EtcdClient(n)); !st.Healthy {
				t.Errorf("etcd on %s after the refused restore: %v", n, st.Err)
			}
		}
	})

	r = kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("kubectl dr etcd restore --yes:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 0 {
		t.Fatalf("restore: exit %d", r.Code)
	}
	for _, want := range []string{"stop done", "restore-data-dir done", "wait-healthy done", "RTO"} {
		if !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("restore output lacks %q", want)
		}
	}

	// The API server serves the snapshot's objects (its caches relist
	// after the revision jump; give them a moment).
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := strings.Fields(kubectl(t, "-n", ns, "get", "configmaps", "-o", "jsonpath={.items[*].metadata.name}"))
		nsr := runBin(t, theLab.Bin.Kubectl, "get", "namespace", "after-snapshot")
		if strings.Join(got, ",") == "cm-a,cm-b" && nsr.Code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restore: configmaps %v (want cm-a,cm-b), namespace after-snapshot exit %d (want gone)", got, nsr.Code)
		}
		time.Sleep(2 * time.Second)
	}

	var clusterID uint64
	for _, n := range theLab.EtcdNodes() {
		st := etcdsnap.Status(t.Context(), theLab.EtcdClient(n))
		if !st.Healthy {
			t.Errorf("etcd on %s after restore: %v", n, st.Err)
			continue
		}
		if clusterID == 0 {
			clusterID = st.ClusterID
		} else if st.ClusterID != clusterID {
			t.Errorf("etcd on %s is in cluster %x, the others in %x", n, st.ClusterID, clusterID)
		}
		if st.Revision <= snap.Revision {
			t.Errorf("etcd on %s at revision %d, want past the snapshot's %d (bumped)", n, st.Revision, snap.Revision)
		}
		aside, _ := filepath.Glob(filepath.Join(theLab.DataDir(n), "server", "db", "etcd.aside-restore-*"))
		if len(aside) != 1 {
			t.Errorf("%s: old data dirs aside %v, want one", n, aside)
		}
	}

	r = kubectlDR(t, "etcd", "restore", "--status")
	if r.Code != 0 || strings.Count(r.Stdout, " finished") != len(theLab.EtcdNodes()) {
		t.Errorf("restore --status: exit %d\n%s\nwant every member's plan finished", r.Code, r.Stdout)
	}
}
