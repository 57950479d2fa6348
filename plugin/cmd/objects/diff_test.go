package objects

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

func objs(t *testing.T, docs ...string) []object {
	t.Helper()
	var out []object
	for _, d := range docs {
		u := obj(t, d)
		out = append(out, object{Obj: u})
	}
	return out
}

// What the cluster assigns, or assigned anew after a restore, is no change;
// a changed value is, and shows in the details.
func TestCompareCountsOnlyWhatARestoreWouldChange(t *testing.T) {
	stored := objs(t, `apiVersion: v1
kind: Service
metadata: {name: web, namespace: a, uid: u1, resourceVersion: "7", creationTimestamp: "2026-01-01T00:00:00Z", managedFields: [{manager: kubectl}]}
spec: {type: NodePort, clusterIP: 10.43.0.9, clusterIPs: [10.43.0.9], ports: [{port: 80, nodePort: 30080}]}`,
		`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: a, uid: u2}
data: {color: blue, size: "3"}`,
		`apiVersion: v1
kind: ConfigMap
metadata: {name: gone, namespace: a}
data: {k: v}`,
		`apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: a, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: r1, controller: true}]}
spec: {nodeName: n1}`)
	live := objs(t, `apiVersion: v1
kind: Service
metadata: {name: web, namespace: a, uid: u9, resourceVersion: "99", creationTimestamp: "2026-02-01T00:00:00Z", managedFields: [{manager: kubectl-dr}]}
spec: {type: NodePort, clusterIP: 10.43.0.77, clusterIPs: [10.43.0.77], ports: [{port: 80, nodePort: 31999}]}
status: {loadBalancer: {}}`,
		`apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: a, uid: u8, resourceVersion: "100"}
data: {color: red, size: "3"}`,
		`apiVersion: v1
kind: ConfigMap
metadata: {name: new, namespace: a}
data: {k: v}`,
		`apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: a, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-2, uid: r2, controller: true}]}
spec: {nodeName: n1}`)
	d, err := compare(stored, live, true)
	if err != nil {
		t.Fatal(err)
	}
	wantGroups := []printers.ObjectDiffGroup{
		{Namespace: "a", Kind: "ConfigMap", Changed: 1, Added: 1, Removed: 1},
		{Namespace: "a", Kind: "Service", Unchanged: 1},
	}
	if diff := cmp.Diff(wantGroups, d.Groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	var got []string
	for _, it := range d.Items {
		got = append(got, it.Change+" "+it.Kind+" "+it.Namespace+"/"+it.Name)
	}
	want := []string{"removed ConfigMap a/gone", "added ConfigMap a/new", "changed ConfigMap a/settings"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if d.Unchanged != 1 || d.Changed != 1 || d.Added != 1 || d.Removed != 1 {
		t.Errorf("totals %d/%d/%d/%d, want 1 each", d.Unchanged, d.Changed, d.Added, d.Removed)
	}
	settings := d.Items[2].Diff
	for _, line := range []string{"--- snapshot: ConfigMap a/settings", "+++ live: ConfigMap a/settings", "-  color: blue", "+  color: red"} {
		if !strings.Contains(settings, line+"\n") {
			t.Errorf("details lack %q:\n%s", line, settings)
		}
	}
	if strings.Contains(settings, "uid") || strings.Contains(settings, "resourceVersion") {
		t.Errorf("details show what the cluster assigns:\n%s", settings)
	}
	if !strings.Contains(d.Items[0].Diff, "-  k: v\n") {
		t.Errorf("a removed object's details show it whole as removed lines:\n%s", d.Items[0].Diff)
	}
}

func TestCompareWithoutDetailsHasNoDiffText(t *testing.T) {
	stored := objs(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\ndata: {k: v1}")
	live := objs(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\ndata: {k: v2}")
	d, err := compare(stored, live, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Items) != 1 || d.Items[0].Change != printers.DiffChanged || d.Items[0].Diff != "" {
		t.Errorf("items %+v; want one changed, no diff text", d.Items)
	}
}

// The table: one row per namespace and kind, then the objects that differ.
func TestObjectDiffTable(t *testing.T) {
	d, err := compare(objs(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\ndata: {k: v1}"), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printers.Print(&b, printers.Table, d); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"NAMESPACE", "KIND", "UNCHANGED", "CHANGED", "ADDED", "REMOVED"},
		{"a", "ConfigMap", "0", "0", "0", "1"},
		nil,
		{"CHANGE", "KIND", "NAMESPACE", "NAME"},
		{"removed", "ConfigMap", "a", "c"},
	}
	var got [][]string
	for _, l := range lines {
		got = append(got, strings.Fields(l))
	}
	if diff := cmp.Diff(want, got, cmpEmptyNil()); diff != "" {
		t.Errorf("table (-want +got):\n%s\n%s", diff, b.String())
	}
}

func cmpEmptyNil() cmp.Option {
	return cmp.Transformer("nilEmpty", func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	})
}
