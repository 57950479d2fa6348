package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/internal/store/nodecreds"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// Credentials bound to the node policy (docs/security.md; made here with
// STS AssumeRole, the policy inline) put and get in the lab's store, and
// MinIO answers 403 AccessDenied to their delete; through objstore, as an
// agent, the refusal is ErrDenied, the store check passes saying scoped,
// and a conditional put (WAL's) works. The plugin removes a snapshot the
// installed agent took from the store itself (etcd snapshot rm), and
// kubectl dr prune runs.
func TestScopedStoreCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := labEnv(t, "DR_S3_ENDPOINT")
	policy, err := nodecreds.Policy(theLab.State.Bucket, "lab")
	if err != nil {
		t.Fatal(err)
	}
	sts, err := credentials.NewSTSAssumeRole(endpoint, credentials.STSAssumeRoleOptions{AccessKey: theLab.State.MinIOUser, SecretKey: theLab.State.MinIOSecret, Policy: string(policy)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sts.GetWithContext(&credentials.CredContext{})
	if err != nil {
		t.Fatalf("assume role with the node policy: %v", err)
	}
	access, secret, token := v.AccessKeyID, v.SecretAccessKey, v.SessionToken

	mc, err := minio.New(strings.TrimPrefix(endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(access, secret, token)})
	if err != nil {
		t.Fatal(err)
	}
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
	store, err := objstore.Open(objstore.Config{URL: theLab.StoreURL(), Endpoint: endpoint, AccessKey: access, SecretKey: secret, SessionToken: token})
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

	// The installed agent takes a snapshot; the plugin removes it from
	// the store with its own credentials.
	node := theLab.State.KubeNode
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--node", node, "--name", "scoped-e2e", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot save on %s: exit %d\n%s", node, r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	if !snap.Uploaded {
		t.Fatalf("snapshot %s not uploaded: %+v", snap.Name, snap)
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
