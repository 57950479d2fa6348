package objects

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

const claimYAML = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop, uid: c1}
spec: {volumeName: pv-old, resources: {requests: {storage: 1Gi}}}
status: {phase: Bound}`

func TestPlanDataFindsEachClaimsFiles(t *testing.T) {
	set := &backupset.Set{ID: "b1", Files: []backupset.FilePart{
		{Node: "server-2", SnapshotID: "s2", PVCs: []string{"shop/data"}},
		{Node: "server-1", SnapshotID: "s1", PVCs: []string{"shop/data", "shop/logs"}},
	}}
	pvs := map[string]*unstructured.Unstructured{"pv-old": obj(t, `apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-old}
spec:
  local: {path: /var/lib/rancher/k3s/storage/pvc-c1_shop_data}
  nodeAffinity: {required: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [server-1]}]}]}}`)}
	s := newStep(obj(t, claimYAML), "shop", map[string]string{"shop": "shop-copy"})
	failed := newStep(obj(t, strings.Replace(claimYAML, "name: data", "name: broken", 1)), "shop", nil)
	failed.item.Action = printers.ActionFail
	cm := newStep(obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}"), "shop", nil)
	data, err := planData(set, []*step{cm, s, failed}, pvs)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 {
		t.Fatalf("%d claims with data, want 1 (the failed one and the config map have none)", len(data))
	}
	d := data[0]
	got := []string{d.from, d.to, d.part.Node, d.path, d.node}
	want := []string{"shop/data", "shop-copy/data", "server-1", "/var/lib/rancher/k3s/storage/pvc-c1_shop_data", "server-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claim data (-want +got):\n%s", diff)
	}
}

// A claim the set holds no files of is refused before anything is
// restored, naming what the set holds.
func TestPlanDataRefusesAClaimWithoutFiles(t *testing.T) {
	set := &backupset.Set{ID: "b1", Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "s1", PVCs: []string{"shop/logs"}}}}
	_, err := planData(set, []*step{newStep(obj(t, claimYAML), "shop", nil)}, nil)
	if cmdutil.Code(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), "backup b1 holds no files of PVC shop/data (its PVCs: shop/logs)") || !strings.Contains(err.Error(), "nothing was restored") {
		t.Errorf("err = %v; want a usage error naming the claim and the set's claims", err)
	}
}

func TestVolumePath(t *testing.T) {
	p, n := volumePath(obj(t, "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: x}\nspec: {hostPath: {path: /data/x}}"))
	if p != "/data/x" || n != "" {
		t.Errorf("hostPath volume: %q %q", p, n)
	}
	p, _ = volumePath(obj(t, "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: x}\nspec: {csi: {driver: d, volumeHandle: h}}"))
	if p != "" {
		t.Errorf("csi volume: path %q, want none", p)
	}
}
