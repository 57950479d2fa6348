package nodecreds

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin/miniotest"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// EnvRestic names a restic binary: with it, the test also runs restic with
// the node credentials.
const EnvRestic = "KDR_TEST_RESTIC"

// resticWithNodeCredentials: restic inits a repository, backs up and
// lists with put/get-only credentials (removing its own locks), and its
// forget, which deletes snapshots, is refused.
func resticWithNodeCredentials(ctx context.Context, t *testing.T, bin string, c objstore.Config) {
	t.Helper()
	loc, err := c.Restic("cluster-1/restic", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "f"), []byte("file"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"--no-cache"}, loc.Options...), args...)...)
		cmd.Env = append(append(os.Environ(), loc.Env...), "RESTIC_REPOSITORY="+loc.Repository, "RESTIC_PASSWORD_FILE="+pw)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"init"}, {"backup", data}, {"snapshots"}, {"check"}} {
		if out, err := run(args...); err != nil {
			t.Fatalf("restic %v with node credentials: %v\n%s", args, err, out)
		}
	}
	mc, err := minio.New(c.Endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken)})
	if err != nil {
		t.Fatal(err)
	}
	for obj := range mc.ListObjects(ctx, "backups", minio.ListObjectsOptions{Prefix: "k3s/cluster-1/restic/locks/", Recursive: true}) {
		t.Errorf("restic left lock %s with node credentials", obj.Key)
	}
	if out, err := run("forget", "latest"); err == nil || !strings.Contains(out, "Access Denied") {
		t.Errorf("restic forget with node credentials: %v; want Access Denied:\n%s", err, out)
	}
	if out, err := run("snapshots", "--json"); err != nil || !strings.Contains(out, `"id"`) {
		t.Errorf("the snapshot after a refused forget: %v\n%s", err, out)
	}
}

// On a real MinIO: credentials bound to the node policy put, get and
// conditionally put under the prefix, delete restic's lock files only, and
// get 403 AccessDenied on every other delete. Object Lock: a bucket
// without it is refused, one made with it keeps a locked object from
// delete.
func TestMinIONodeCredentialsAndObjectLock(t *testing.T) {
	srv := miniotest.Start(t)
	endpoint, root := srv.Endpoint, Creds{AccessKey: srv.RootAccessKey, SecretKey: srv.RootSecretKey}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mc, err := minio.New(endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(root.AccessKey, root.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(ctx, "backups", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := objstore.Config{URL: "s3://backups/k3s", Endpoint: endpoint, AccessKey: root.AccessKey, SecretKey: root.SecretKey}
	// Credentials bound to the node policy, made without MinIO's admin
	// API: STS AssumeRole with the policy inline (temporary, an hour).
	policy, err := Policy("backups", "k3s")
	if err != nil {
		t.Fatal(err)
	}
	sts, err := credentials.NewSTSAssumeRole(endpoint, credentials.STSAssumeRoleOptions{AccessKey: root.AccessKey, SecretKey: root.SecretKey, Policy: string(policy)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sts.GetWithContext(&credentials.CredContext{})
	if err != nil {
		t.Fatalf("assume role with the node policy: %v", err)
	}
	node := cfg
	node.AccessKey, node.SecretKey, node.SessionToken = v.AccessKeyID, v.SecretAccessKey, v.SessionToken
	s, err := objstore.Open(node)
	if err != nil {
		t.Fatal(err)
	}
	store := s.Sub("cluster-1")
	body := []byte("snapshot")
	if _, err := store.Put(ctx, "etcd/n1/a.db", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("put with node credentials: %v", err)
	}
	if _, err := objstore.Create(ctx, store, "wal/db/000000010000000000000001", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("conditional put with node credentials: %v", err)
	}
	if list, err := store.List(ctx, ""); err != nil || len(list) != 2 {
		t.Fatalf("list with node credentials: %v, %v", list, err)
	}
	if err := store.Delete(ctx, "etcd/n1/a.db"); !errors.Is(err, objstore.ErrDenied) {
		t.Errorf("delete with node credentials: %v; want ErrDenied", err)
	}
	nc, err := minio.New(endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(v.AccessKeyID, v.SecretAccessKey, v.SessionToken)})
	if err != nil {
		t.Fatal(err)
	}
	err = nc.RemoveObject(ctx, "backups", "k3s/cluster-1/etcd/n1/a.db", minio.RemoveObjectOptions{})
	if resp := minio.ToErrorResponse(err); resp.StatusCode != http.StatusForbidden || resp.Code != "AccessDenied" {
		t.Errorf("raw delete with node credentials: %v (HTTP %d %s); want 403 AccessDenied", err, resp.StatusCode, resp.Code)
	}
	if _, err := store.Put(ctx, "restic/locks/abc", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "restic/locks/abc"); err != nil {
		t.Errorf("delete of a restic lock with node credentials: %v", err)
	}
	if acc, err := objstore.Probe(ctx, store); err != nil || acc.CanDelete {
		t.Errorf("probe with node credentials: %+v, %v", acc, err)
	}
	if bin := os.Getenv(EnvRestic); bin != "" {
		resticWithNodeCredentials(ctx, t, bin, node)
	}

	if _, err := objstore.SetObjectLock(ctx, cfg, objstore.LockSettings{Mode: objstore.LockGovernance, Days: 1}); !errors.Is(err, objstore.ErrNoObjectLock) {
		t.Errorf("object lock on a bucket without it: %v; want ErrNoObjectLock", err)
	}
	lockCfg := cfg
	lockCfg.URL = "s3://locked/k3s"
	if _, err := objstore.SetObjectLock(ctx, lockCfg, objstore.LockSettings{Mode: objstore.LockGovernance, Days: 1}); err == nil {
		t.Error("object lock on a missing bucket without Create")
	}
	lr, err := objstore.SetObjectLock(ctx, lockCfg, objstore.LockSettings{Mode: objstore.LockCompliance, Days: 2, Create: true})
	if err != nil || !lr.Created {
		t.Fatalf("object lock with a new bucket: %+v, %v", lr, err)
	}
	if got, _ := objstore.ObjectLockOf(ctx, lockCfg); got != "compliance 2 days" {
		t.Errorf("lock: %q", got)
	}
	ls, err := objstore.Open(lockCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Put(ctx, "snap", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	err = ls.Delete(ctx, "snap")
	var locked *objstore.LockedError
	if !errors.As(err, &locked) || time.Until(locked.Until) < 47*time.Hour {
		t.Errorf("delete of a locked object: %v; want kept two days", err)
	}
	st, err := mc.StatObject(ctx, "locked", "k3s/snap", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.RemoveObject(ctx, "locked", "k3s/snap", minio.RemoveObjectOptions{VersionID: st.VersionID}); err == nil {
		t.Error("root erased a version under compliance lock")
	}
}
