package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

const diffNamespaced = `apiVersion: v1
kind: Namespace
metadata: {name: objdiff-e2e}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: objdiff-e2e}
data: {color: blue, size: "3"}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: objdiff-e2e}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: objdiff-e2e}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: objdiff-e2e, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.invalid/web:1.0}
`

func objectDiff(t *testing.T, r result) *printers.ObjectDiff {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("objects diff: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var d printers.ObjectDiff
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("objects diff JSON: %v\n%s", err, r.stdout)
	}
	return &d
}

func diffChanges(d *printers.ObjectDiff) map[string]string {
	out := map[string]string{}
	for _, it := range d.Items {
		out[it.Kind+"/"+it.Name] = it.Change
	}
	return out
}

// objects diff against the real API server: right after the snapshot
// nothing differs (what the cluster assigns is no change), then a change,
// a deletion and an addition show per kind, --details shows the changed
// value, and after the namespace is deleted and restored from the
// snapshot the diff is clean again (new uids, cluster IP and node port).
func TestObjectsDiffAgainstLiveCluster(t *testing.T) {
	const ns = "objdiff-e2e"
	applyManifest(t, diffNamespaced)
	t.Cleanup(func() {
		runBin(t, theLab.Bin.Kubectl, nil, "delete", "namespace", ns, "--ignore-not-found", "--wait=false")
	})
	// What the controllers add right after (the default service account,
	// the Deployment's revision) is there before the snapshot is taken.
	runKubectl(t, "-n", ns, "wait", "--for=create", "serviceaccount/default", "--timeout=60s")
	runKubectl(t, "-n", ns, "wait", "--for=jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}=1", "deployment/web", "--timeout=60s")
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "objdiff", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r).Name

	d := objectDiff(t, kubectlDR(t, nil, "objects", "diff", snap, "-n", ns, "-o", "json"))
	if d.Changed != 0 || d.Added != 0 || d.Removed != 0 || d.Unchanged < 4 {
		t.Fatalf("diff right after the snapshot: %d unchanged, %d changed, %d added, %d removed (%v); want nothing but unchanged", d.Unchanged, d.Changed, d.Added, d.Removed, diffChanges(d))
	}

	runKubectl(t, "-n", ns, "patch", "configmap", "settings", "-p", `{"data":{"color":"red"}}`)
	runKubectl(t, "-n", ns, "delete", "secret", "db")
	runKubectl(t, "-n", ns, "create", "configmap", "extra", "--from-literal=k=v")

	r = kubectlDR(t, nil, "objects", "diff", snap, "-n", ns)
	if r.code != 0 {
		t.Fatalf("objects diff: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range [][]string{
		{ns, "ConfigMap", "0", "1", "1", "0"},
		{ns, "Secret", "0", "0", "0", "1"},
		{ns, "Deployment", "1", "0", "0", "0"},
		{ns, "Service", "1", "0", "0", "0"},
		{"changed", "ConfigMap", ns, "settings"},
		{"added", "ConfigMap", ns, "extra"},
		{"removed", "Secret", ns, "db"},
	} {
		found := false
		for _, line := range strings.Split(r.stdout, "\n") {
			found = found || strings.Join(strings.Fields(line), " ") == strings.Join(want, " ")
		}
		if !found {
			t.Errorf("objects diff has no row %q:\n%s", strings.Join(want, " "), r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "1 changed, 1 added since, 1 removed since") {
		t.Errorf("summary: %s", r.stderr)
	}

	r = kubectlDR(t, nil, "objects", "diff", snap, "-n", ns, "--kind", "configmap", "--name", "settings", "--details")
	if r.code != 0 {
		t.Fatalf("objects diff --details: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range []string{"--- snapshot: ConfigMap " + ns + "/settings", "+++ live: ConfigMap " + ns + "/settings", "-  color: blue", "+  color: red"} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Errorf("--details lacks %q:\n%s", line, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "extra") || strings.Contains(r.stdout, "resourceVersion") {
		t.Errorf("--details shows what was not chosen or what the cluster assigns:\n%s", r.stdout)
	}

	runKubectl(t, "delete", "namespace", ns, "--wait=true", "--timeout=120s")
	if r := kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--yes"); r.code != 0 {
		t.Fatalf("objects restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d = objectDiff(t, kubectlDR(t, nil, "objects", "diff", snap, "-n", ns, "-o", "json"))
	if d.Changed != 0 || d.Added != 0 || d.Removed != 0 {
		t.Errorf("diff after restoring the namespace: %v; want nothing changed, added or removed", diffChanges(d))
	}
}

// ls and get refuse another cluster's snapshot unless --from-cluster
// names it, as restore does. The other cluster is a copy of one of this
// cluster's snapshots under another cluster id in the same store.
func TestObjectsReadRefusesAnotherClustersSnapshot(t *testing.T) {
	const other = "0d1e2f3a-other-cluster"
	ctx := context.Background()
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "objforeign", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	name := snapshotJSON(t, r).Name
	own := labStore(t)
	list, _, err := dbsnap.ListStore(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	snap, ok := dbsnap.Find(list, name)
	if !ok {
		t.Fatalf("snapshot %s not in the store", name)
	}
	root, err := objstore.Open(objstore.Config{URL: theLab.StoreURL(), Endpoint: labEnv(t, "DR_S3_ENDPOINT"), AccessKey: theLab.State.MinIOUser, SecretKey: theLab.State.MinIOSecret})
	if err != nil {
		t.Fatal(err)
	}
	foreign := root.Sub(other)
	copyObject := func(key string) {
		rc, err := own.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := foreign.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	copyObject(snap.StoreKey)
	if snap.Bootstrap != nil && snap.Bootstrap.StoreKey != "" {
		copyObject(snap.Bootstrap.StoreKey)
	}
	rec := *snap
	rec.ClusterID = other
	meta, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := foreign.Put(ctx, dbsnap.MetaKey(snap.Node, snap.Name), bytes.NewReader(meta), int64(len(meta))); err != nil {
		t.Fatal(err)
	}
	// The other cluster's agents signed their records too.
	copyObject(dbsnap.MetaKey(snap.Node, snap.Name) + signature.Suffix)
	t.Cleanup(func() {
		for _, k := range []string{snap.StoreKey, dbsnap.MetaKey(snap.Node, snap.Name), dbsnap.MetaKey(snap.Node, snap.Name) + signature.Suffix} {
			foreign.Delete(ctx, k)
		}
		if snap.Bootstrap != nil && snap.Bootstrap.StoreKey != "" {
			foreign.Delete(ctx, snap.Bootstrap.StoreKey)
		}
	})

	want := "was taken in cluster " + other + ", and this is cluster " + theLab.State.ClusterID + ": pass --from-cluster " + other
	for _, args := range [][]string{
		{"objects", "ls", name, "-n", "kube-system", "--cluster-id", other},
		{"objects", "get", name, "namespace/kube-system", "--cluster-id", other},
		{"objects", "diff", name, "-n", "kube-system", "--cluster-id", other},
	} {
		r := kubectlDR(t, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "reading "+name) {
			t.Errorf("%s: exit %d\n%s\nwant 1, %q, before the snapshot is read", strings.Join(args[:2], " "), r.code, r.stderr, want)
		}
	}
	// Another install's records cannot be checked here: only read when
	// the user says so.
	r = kubectlDR(t, nil, "objects", "ls", name, "--from-cluster", other, "--kind", "namespace")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot be checked") || !strings.Contains(r.stderr, "--allow-unsigned") {
		t.Errorf("objects ls --from-cluster without --allow-unsigned: exit %d\n%s\nwant 1, the record cannot be checked", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "objects", "ls", name, "--from-cluster", other, "--kind", "namespace", "--allow-unsigned")
	if r.code != 0 || !strings.Contains(r.stdout, "Namespace") {
		t.Errorf("objects ls --from-cluster: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = kubectlDR(t, nil, "objects", "get", name, "namespace/kube-system", "--from-cluster", other, "--allow-unsigned")
	if r.code != 0 || !strings.Contains(r.stdout, "name: kube-system") {
		t.Errorf("objects get --from-cluster: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
