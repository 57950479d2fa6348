package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// Installed with MinIO admin credentials once, the agents get put/get-only
// store credentials: the ones in the Secret the DaemonSet mounts (read as
// the agent reads its files) put and get, and MinIO answers 403
// AccessDenied to their delete; a snapshot the installed agent takes with
// them lands in the store, a conditional put (WAL's) works, and the
// plugin's rm, with the install's delete-capable credentials, removes the
// snapshot. Re-installing with full node credentials puts the lab back.
func TestScopedStoreCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adminAccess, adminSecret := write("admin-access", theLab.State.MinIOUser), write("admin-secret", theLab.State.MinIOSecret)
	install := func(what string, args ...string) result {
		t.Helper()
		r := kubectlDR(t, nil, append([]string{"install", "--image", lab.AgentImage, "--timeout", "2m"}, args...)...)
		if r.code != 0 {
			t.Fatalf("install %s: exit %d\n%s\n%s", what, r.code, r.stdout, r.stderr)
		}
		runKubectl(t, "-n", "dr-system", "rollout", "restart", "daemonset/dr-agent")
		runKubectl(t, "-n", "dr-system", "rollout", "status", "daemonset/dr-agent", "--timeout", "2m")
		return r
	}
	t.Cleanup(func() {
		// Full credentials as the nodes' again: the lab as it was.
		install("with full node credentials", "--store-node-access-key-file", adminAccess, "--store-node-secret-key-file", adminSecret)
	})
	r := install("with admin credentials", "--store-admin-access-key-file", adminAccess, "--store-admin-secret-key-file", adminSecret)
	if !strings.Contains(r.stderr, "delete refused (scoped)") {
		t.Errorf("install does not say the node credentials are scoped:\n%s", r.stderr)
	}

	var sec corev1.Secret
	if err := json.Unmarshal([]byte(runKubectl(t, "-n", "dr-system", "get", "secret", "dr-store-node", "-o", "json")), &sec); err != nil {
		t.Fatal(err)
	}
	access, secret := string(sec.Data["accessKey"]), string(sec.Data["secretKey"])
	if string(sec.Data["scope"]) != "put-get" || access == "" || access == theLab.State.MinIOUser {
		t.Fatalf("Secret dr-store-node: scope %q, access key %q; want put-get credentials of their own", sec.Data["scope"], access)
	}
	var ds struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(runKubectl(t, "-n", "dr-system", "get", "daemonset", "dr-agent", "-o", "json")), &ds); err != nil {
		t.Fatal(err)
	}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "dr-store" {
			t.Errorf("the DaemonSet mounts Secret dr-store (the delete-capable credentials) as volume %s", v.Name)
		}
	}

	// The node's credentials, as its agent reads them from its files.
	mc, err := minio.New(strings.TrimPrefix(string(sec.Data["endpoint"]), "http://"), &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key := "lab/" + theLab.State.ClusterID + "/scoped-e2e/probe"
	body := []byte("scoped")
	if _, err := mc.PutObject(ctx, theLab.State.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put with the node credentials: %v", err)
	}
	if got := storeObject(t, key); !bytes.Equal(got, body) {
		t.Errorf("the object put with the node credentials holds %q", got)
	}
	err = mc.RemoveObject(ctx, theLab.State.Bucket, key, minio.RemoveObjectOptions{})
	if resp := minio.ToErrorResponse(err); resp.StatusCode != 403 || resp.Code != "AccessDenied" {
		t.Errorf("delete with the node credentials: %v (HTTP %d %s); want 403 AccessDenied", err, resp.StatusCode, resp.Code)
	}
	if got := storeObject(t, key); !bytes.Equal(got, body) {
		t.Errorf("after the refused delete the object holds %q", got)
	}
	// Through objstore, as the agent: a refused delete is ErrDenied, a
	// store check passes and says scoped, a conditional put (WAL's) works.
	store, err := objstore.Open(objstore.Config{URL: theLab.StoreURL(), Endpoint: string(sec.Data["endpoint"]), AccessKey: access, SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	store = store.Sub(theLab.State.ClusterID)
	if err := store.Delete(ctx, "scoped-e2e/probe"); !errors.Is(err, objstore.ErrDenied) {
		t.Errorf("objstore delete with the node credentials: %v; want ErrDenied", err)
	}
	if acc, err := objstore.Probe(ctx, store); err != nil || acc.CanDelete {
		t.Errorf("probe with the node credentials: %+v, %v; want put/get, no delete", acc, err)
	}
	if _, err := objstore.Create(ctx, store, "scoped-e2e/wal-like", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Errorf("conditional put with the node credentials: %v", err)
	}
	if _, err := objstore.Create(ctx, store, "scoped-e2e/wal-like", bytes.NewReader(body), int64(len(body))); !errors.Is(err, objstore.ErrExists) {
		t.Errorf("second conditional put: %v; want ErrExists", err)
	}
	full, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key, "lab/" + theLab.State.ClusterID + "/scoped-e2e/wal-like"} {
		if err := full.RemoveObject(ctx, theLab.State.Bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Errorf("remove %s with the admin credentials: %v", k, err)
		}
	}

	// The installed agent, now on the scoped credentials, takes a
	// snapshot; the plugin removes it with its own.
	node := theLab.State.KubeNode
	r = kubectlDR(t, nil, "etcd", "snapshot", "save", "--node", node, "--name", "scoped-e2e", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot save on %s with scoped credentials: exit %d\n%s", node, r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	if !snap.Uploaded {
		t.Fatalf("snapshot %s not uploaded with scoped credentials: %+v", snap.Name, snap)
	}
	stored := "lab/" + theLab.State.ClusterID + "/" + snap.StoreKey
	if _, err := full.StatObject(ctx, theLab.State.Bucket, stored, minio.StatObjectOptions{}); err != nil {
		t.Fatalf("snapshot %s is not in the store: %v", snap.Name, err)
	}
	if r := kubectlDR(t, nil, "etcd", "snapshot", "rm", snap.Name); r.code != 0 {
		t.Fatalf("snapshot rm %s: exit %d\n%s\n%s", snap.Name, r.code, r.stdout, r.stderr)
	}
	_, err = full.StatObject(ctx, theLab.State.Bucket, stored, minio.StatObjectOptions{})
	if minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Errorf("after rm, %s: %v; want it gone", stored, err)
	}
	if r := kubectlDR(t, nil, "prune"); r.code != 0 {
		t.Errorf("kubectl dr prune: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// Object Lock: install refuses a bucket without it, saying what to do;
// on a bucket made with lock, a locked object is kept by delete (and its
// version cannot be erased, even with the admin credentials: MinIO
// refuses it).
func TestObjectLock(t *testing.T) {
	r := kubectlDR(t, nil, "install", "--image", lab.AgentImage, "--object-lock-days", "1", "--timeout", "2m")
	if r.code == 0 || !strings.Contains(r.stderr, "the bucket has no object lock") || !strings.Contains(r.stderr, "nothing was applied") {
		t.Errorf("install --object-lock-days on a bucket without lock: exit %d\n%s", r.code, r.stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := labEnv(t, "DR_S3_ENDPOINT")
	cfg := objstore.Config{URL: "s3://dr-lock-e2e/p", Endpoint: endpoint, AccessKey: theLab.State.MinIOUser, SecretKey: theLab.State.MinIOSecret}
	if _, err := objstore.SetObjectLock(ctx, cfg, objstore.LockSettings{Mode: objstore.LockGovernance, Days: 1, Create: true}); err != nil {
		t.Fatalf("object lock on a new bucket: %v", err)
	}
	if got, err := objstore.ObjectLockOf(ctx, cfg); err != nil || got != "governance 1 days" {
		t.Errorf("bucket lock: %q, %v; want governance 1 days", got, err)
	}
	store, err := objstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("locked")
	if _, err := store.Put(ctx, "snap", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	err = store.Delete(ctx, "snap")
	var locked *objstore.LockedError
	if !errors.As(err, &locked) || locked.Until.Before(time.Now().Add(23*time.Hour)) {
		t.Errorf("delete of a locked object: %v; want kept until a day from now", err)
	}
	if _, err := store.Stat(ctx, "snap"); err != nil {
		t.Errorf("the locked object after delete: %v", err)
	}
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	st, err := mc.StatObject(ctx, "dr-lock-e2e", "p/snap", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = mc.RemoveObject(ctx, "dr-lock-e2e", "p/snap", minio.RemoveObjectOptions{VersionID: st.VersionID})
	if err == nil {
		t.Error("the locked version was erased with the admin credentials")
	}
	if _, err := mc.StatObject(ctx, "dr-lock-e2e", "p/snap", minio.StatObjectOptions{VersionID: st.VersionID}); err != nil {
		t.Errorf("the locked version after an erase attempt: %v", err)
	}
}
