package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// The preview of an etcd restore names exactly the objects that changed
// since the snapshot, read from the snapshot itself and the live cluster.
func TestEtcdRestorePreview(t *testing.T) {
	ns := "restore-preview"
	runKubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { runBin(t, theLab.Bin.Kubectl, nil, "delete", "namespace", ns, "--wait=false") })
	for _, cm := range []string{"cm-a", "cm-b", "cm-c"} {
		runKubectl(t, "-n", ns, "create", "configmap", cm, "--from-literal=v=1")
	}
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "preview-base", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	base := snapshotJSON(t, r)
	if b := base.Bootstrap; b == nil || len(b.Files) == 0 || b.Files[0] != "server/token" || b.StoreKey == "" {
		t.Errorf("snapshot bootstrap record %+v: want the server token kept (encrypted) with the snapshot", b)
	}

	runKubectl(t, "-n", ns, "delete", "configmap", "cm-a")
	runKubectl(t, "-n", ns, "patch", "configmap", "cm-b", "-p", `{"data":{"v":"2"}}`)
	runKubectl(t, "-n", ns, "create", "configmap", "cm-d", "--from-literal=v=1")

	r = kubectlDR(t, nil, "etcd", "restore", base.Name, "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	var view printers.EtcdRestorePreview
	if err := json.Unmarshal([]byte(r.stdout), &view); err != nil {
		t.Fatalf("preview JSON: %v\n%s", err, r.stdout)
	}
	if view.Snapshot.Name != base.Name || view.Snapshot.Revision != base.Revision || view.LiveRevision <= base.Revision {
		t.Errorf("preview of %s (revision %d) against live revision %d; want %s at %d against a later revision",
			view.Snapshot.Name, view.Snapshot.Revision, view.LiveRevision, base.Name, base.Revision)
	}
	// Every server's part of a restore has a digest: the preview server's
	// from its preview, the others' asked of them.
	servers := 0
	for _, n := range []string{"server-1", "server-2", "server-3"} {
		if _, err := os.Stat(filepath.Join(theLab.DataDir(n), "server", "db", "etcd")); err != nil {
			continue
		}
		servers++
		if d := view.Digests[n]; !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(d) {
			t.Errorf("preview digest of %s = %q, want a sha256 (digests %v)", n, d, view.Digests)
		}
	}
	if servers == 0 || len(view.Digests) != servers {
		t.Errorf("preview digests %v, want one for each of the %d servers", view.Digests, servers)
	}
	var row *printers.Impact
	for i := range view.Items {
		if view.Items[i].GroupResource == "configmaps" && view.Items[i].Namespace == ns {
			row = &view.Items[i]
		}
	}
	if row == nil {
		t.Fatalf("no configmaps row for %s in %+v", ns, view.Items)
	}
	got := [3][]string{row.DisappearNames, row.ReappearNames, row.ChangeNames}
	want := [3][]string{{"cm-d"}, {"cm-a"}, {"cm-b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configmaps in %s: disappear/reappear/change = %v, want %v", ns, got, want)
	}
	// cm-c and the namespace's kube-root-ca.crt are untouched.
	if row.Unchanged != 2 {
		t.Errorf("configmaps in %s unchanged = %d, want 2 (cm-c, kube-root-ca.crt)", ns, row.Unchanged)
	}
	for _, it := range view.Items {
		if it.GroupResource == "namespaces" && (it.Disappear+it.Reappear) != 0 {
			t.Errorf("namespaces row %+v: the namespace existed at the snapshot and still does", it)
		}
	}

	r = kubectlDR(t, nil, "etcd", "restore", base.Name, "--dry-run")
	for _, want := range []string{"Preview: server-1 sha256:" + view.Digests["server-1"][:12] + "…", "would reappear: configmaps in " + ns + ": cm-a", "would disappear: configmaps in " + ns + ": cm-d", "Nothing was changed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("preview table lacks %q:\n%s", want, r.stdout)
		}
	}

	r = kubectlDR(t, nil, "etcd", "restore", base.Name)
	if r.code != 2 || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("restore without --dry-run: exit %d\n%s\nwant 2: this version previews only", r.code, r.stderr)
	}
}

// A snapshot whose stored object does not match its checksum is refused
// before anything else happens, and no copy of it is kept.
func TestEtcdRestoreRefusesCorruptSnapshot(t *testing.T) {
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "preview-corrupt", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	key := "lab/" + theLab.State.ClusterID + "/" + snap.StoreKey
	stored := storeObject(t, key)
	t.Cleanup(func() { putStoreObject(t, key, stored) })
	putStoreObject(t, key, stored[:len(stored)/2])

	r = kubectlDR(t, nil, "etcd", "restore", snap.Name, "--dry-run", "--node", snap.Node)
	if r.code != 1 || !strings.Contains(r.stderr, "sha256") || !strings.Contains(r.stderr, "refused") {
		t.Errorf("preview of a truncated snapshot: exit %d\n%s\nwant 1, refused on its checksum", r.code, r.stderr)
	}
	local := filepath.Join(theLab.NodeRoot(snap.Node), "var", "lib", "dr-agent", "restore", snap.Name+".db")
	if _, err := os.Stat(local); err == nil {
		t.Errorf("%s kept after a failed verification", local)
	}
}

// storeObject reads an object of the lab's bucket with MinIO's client.
func storeObject(t *testing.T, key string) []byte {
	t.Helper()
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := mc.GetObject(context.Background(), theLab.State.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(obj); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// putStoreObject writes an object of the lab's bucket behind the agents'
// back (a damaged copy, or the original put back).
func putStoreObject(t *testing.T, key string, data []byte) {
	t.Helper()
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(context.Background(), theLab.State.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}
