package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// The snapshots k3s uploads to S3 (--etcd-s3), shaped as k3s writes them:
// <folder>/<name>.zip with k3s's user metadata, and <folder>/.metadata/<name>
// beside it. With k3s's S3 settings in its Secret kube-system/
// k3s-etcd-snapshot-s3-config (as k3s reads them), snapshot ls --all lists
// the snapshot with origin k3s-s3 and k3s's node, and snapshot import NAME
// downloads, verifies and catalogs it under that node.
func TestK3sS3SnapshotsListedAndImported(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	raw := filepath.Join(dir, "etcdctl.db")
	endpoint := strings.Split(labEnv(t, "ETCDCTL_ENDPOINTS"), ",")[0]
	if r := runBin(t, theLab.Bin.Etcdctl, []string{"ETCDCTL_ENDPOINTS=" + endpoint}, "snapshot", "save", raw); r.code != 0 {
		t.Fatalf("etcdctl snapshot save: exit %d\n%s", r.code, r.stderr)
	}
	data, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A month old: never the newest snapshot other tests restore.
	node := theLab.EtcdNodes()[1]
	name := fmt.Sprintf("etcd-snapshot-%s-%d", node, time.Now().AddDate(0, -1, 0).Unix())
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("k3s-etcd-%d", time.Now().UnixNano())
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	obj := name + ".zip"
	if _, err := mc.PutObject(ctx, bucket, "cluster-a/"+obj, bytes.NewReader(zipped.Bytes()), int64(zipped.Len()), minio.PutObjectOptions{
		UserMetadata: map[string]string{"K3s-Node-Name": node, "K3s-Cluster-Id": "k3s-cluster", "K3s-Token-Hash": "hash"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, bucket, "cluster-a/.metadata/"+obj, strings.NewReader("e30="), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(labEnv(t, "DR_S3_ENDPOINT"))
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "k3s-s3.yaml")
	os.WriteFile(secret, []byte(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: k3s-etcd-snapshot-s3-config, namespace: kube-system}
stringData:
  etcd-s3-endpoint: %q
  etcd-s3-insecure: "true"
  etcd-s3-bucket: %q
  etcd-s3-folder: cluster-a
  etcd-s3-access-key: %q
  etcd-s3-secret-key: %q
`, u.Host, bucket, theLab.State.MinIOUser, theLab.State.MinIOSecret)), 0o600)
	runKubectl(t, "apply", "-f", secret)
	t.Cleanup(func() {
		runBin(t, theLab.Bin.Kubectl, nil, "-n", "kube-system", "delete", "secret", "k3s-etcd-snapshot-s3-config")
	})

	list := func() map[string]printers.EtcdSnapshot {
		t.Helper()
		r := kubectlDR(t, nil, "etcd", "snapshot", "ls", "--all", "-o", "json")
		var l printers.EtcdSnapshotList
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil {
			t.Fatalf("snapshot ls --all: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		out := map[string]printers.EtcdSnapshot{}
		for _, s := range l.Items {
			if s.Name == obj || s.Name == name {
				out[s.Origin] = *s
			}
		}
		return out
	}
	got := list()
	if s, ok := got["k3s-s3"]; !ok || s.Node != node || s.Snapshot.Size != int64(zipped.Len()) || len(got) != 1 {
		t.Fatalf("ls --all: want one k3s-s3 row for %s on %s (%d bytes), got %+v", obj, node, zipped.Len(), got)
	}
	r := kubectlDR(t, nil, "etcd", "snapshot", "ls", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "k3s-s3") || strings.Contains(r.stdout, ".metadata") {
		t.Errorf("ls --all table: exit %d, want a k3s-s3 row and no .metadata one:\n%s", r.code, r.stdout)
	}

	r = kubectlDR(t, nil, "etcd", "snapshot", "import", obj)
	if r.code != 0 || !strings.Contains(r.stdout, "imported k3s-zip as "+name+" (node "+node) {
		t.Fatalf("snapshot import %s: exit %d\n%s%s", obj, r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "etcd", "snapshot", "rm", name) })
	got = list()
	if s, ok := got["imported"]; !ok || s.Node != node || len(got) != 1 {
		t.Fatalf("ls --all after the import: want it once, imported, on %s; got %+v", node, got)
	}
	r = kubectlDR(t, nil, "etcd", "snapshot", "import", "etcd-snapshot-nowhere-1795285773.zip")
	if r.code == 0 || !strings.Contains(r.stderr, "neither a server nor k3s's S3 has") {
		t.Errorf("import of a name nobody has: exit %d\n%s", r.code, r.stderr)
	}
}
