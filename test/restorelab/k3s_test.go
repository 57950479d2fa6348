package restorelab

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// The k3s cluster reset on three servers, with the k3s stand-in running
// `k3s server --cluster-reset --cluster-reset-restore-path` (k3s cannot be
// built here): one server resets from the verified snapshot, the other two
// move server/db/etcd aside and rejoin it; the API serves the snapshot's
// objects and the three members form one new cluster.
func TestK3sClusterResetThreeServersWithK3sStandin(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	ns := "reset-e2e"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "kept", "--from-literal=v=1")
	snap := labtest.SaveSnapshot(t, theLab, "before-reset")
	kubectl(t, "-n", ns, "delete", "configmap", "kept")
	kubectl(t, "-n", ns, "create", "configmap", "after-snapshot", "--from-literal=v=1")
	before := etcdmember.Status(t.Context(), theLab.EtcdClient(theLab.EtcdNodes()[0]))

	r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("kubectl dr etcd restore --yes:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 0 {
		t.Fatalf("restore: exit %d", r.Code)
	}
	planID := regexp.MustCompile(`plan (restore-[0-9]+):`).FindStringSubmatch(r.Stderr)
	if planID == nil {
		t.Fatalf("no plan id in the output")
	}
	for _, want := range []string{"resets the cluster from it, the others rejoin", "wait-peers-stopped done", "cluster-reset done", "move-db-aside done", "wait-reset-server done", "RTO"} {
		if !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("restore output lacks %q", want)
		}
	}

	// k3s restarts its embedded API server with etcd; the lab's runs on
	// its own, so it is restarted here (its watch cache is past the
	// restored revision, which the k3s flavour does not bump, as k3s
	// does not).
	labtest.RestartAPIServer(t, theLab)
	labtest.WaitConfigMaps(t, theLab, ns, "kept")

	clusterID := oneHealthyCluster(t)
	resets, rejoins := 0, 0
	for _, n := range theLab.EtcdNodes() {
		db := filepath.Join(theLab.DataDir(n), "server", "db")
		old, _ := filepath.Glob(filepath.Join(db, "etcd-old-*"))
		aside, _ := filepath.Glob(filepath.Join(db, "etcd.aside-"+planID[1]))
		switch {
		case len(old) == 1 && len(aside) == 0:
			resets++
		case len(old) == 0 && len(aside) == 1:
			rejoins++
		default:
			t.Errorf("%s: k3s's etcd-old dirs %v, ours aside %v: want one of either", n, old, aside)
		}
		if snaps, _ := filepath.Glob(filepath.Join(db, "snapshots", "*")); n == snap.Node && len(snaps) == 0 {
			t.Errorf("%s: server/db/snapshots was emptied", n)
		}
	}
	if resets != 1 || rejoins != 2 {
		t.Errorf("%d server(s) reset and %d rejoined, want 1 and 2", resets, rejoins)
	}
	if clusterID == before.ClusterID {
		t.Errorf("the members are still in the old cluster %x, want the new one the reset made", clusterID)
	}
}

// oneHealthyCluster checks that every member is healthy and in the same
// cluster, and returns its id.
func oneHealthyCluster(t *testing.T) uint64 {
	t.Helper()
	var clusterID uint64
	for _, n := range theLab.EtcdNodes() {
		st := etcdmember.Status(t.Context(), theLab.EtcdClient(n))
		switch {
		case !st.Healthy:
			t.Errorf("etcd on %s: %v", n, st.Err)
		case clusterID == 0:
			clusterID = st.ClusterID
		case st.ClusterID != clusterID:
			t.Errorf("etcd on %s is in cluster %x, the others in %x", n, st.ClusterID, clusterID)
		}
	}
	return clusterID
}
