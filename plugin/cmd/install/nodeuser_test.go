package install

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin"
	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin/miniotest"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// adminOptions are install's options for the store at endpoint with the
// admin credentials in key files.
func adminOptions(t *testing.T, endpoint, access, secret string) (*Options, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	af, sf := filepath.Join(dir, "admin.access"), filepath.Join(dir, "admin.secret")
	if err := os.WriteFile(af, []byte(access+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sf, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	o := &Options{IOStreams: streams, StoreAdminAccessKeyFile: af, StoreAdminSecretKeyFile: sf, ObjectLockMode: objstore.LockGovernance}
	o.store = objstore.Config{URL: "s3://backups/k3s", Endpoint: endpoint, AccessKey: "plugin-key", SecretKey: "plugin-secret"}
	return o, errOut
}

// runNodeStore is install's node-credential step: the Secret it would
// write, and what it printed.
func runNodeStore(t *testing.T, o *Options, errOut *bytes.Buffer, ex *existingState) (map[string][]byte, string, error) {
	t.Helper()
	errOut.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := o.validateNodeStore(); err != nil {
		t.Fatal(err)
	}
	n, err := o.nodeStore(ctx, "cluster-1", ex)
	if err == nil {
		n, err = o.checkNodeStore(ctx, "cluster-1", n)
	}
	if err != nil {
		return nil, errOut.String(), err
	}
	return nodeSecretData(o.store, n), errOut.String(), nil
}

// install --store-admin-* on a real MinIO makes user and policy
// dr-node-CLUSTER, puts them in Secret dr-store-node as scoped, and the
// user puts and gets but cannot delete. A re-run keeps the key the Secret
// holds; a Secret whose key no longer works gets a new one, and MinIO has
// it too. Wrong admin credentials, a non-admin's, and a store that is not
// MinIO fail with what to do; the admin credentials are in nothing install
// writes or prints.
func TestInstallMakesTheNodeUserOnMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s3As := func(access, secret string) *minio.Client {
		t.Helper()
		c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := s3As(srv.RootAccessKey, srv.RootSecretKey).MakeBucket(ctx, "backups", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	o, errOut := adminOptions(t, srv.Endpoint, srv.RootAccessKey, srv.RootSecretKey)
	o.store.AccessKey, o.store.SecretKey = srv.RootAccessKey, srv.RootSecretKey
	noAdminCreds := func(what string, data map[string][]byte, out string) {
		t.Helper()
		for k, v := range data {
			if bytes.Contains(v, []byte(srv.RootSecretKey)) {
				t.Errorf("%s: Secret key %s holds the admin secret key", what, k)
			}
		}
		if strings.Contains(out, srv.RootSecretKey) {
			t.Errorf("%s: install printed the admin secret key", what)
		}
	}

	// A dry run asks, and makes nothing.
	o.DryRun = true
	data, out, err := runNodeStore(t, o, errOut, &existingState{})
	if err != nil || string(data["secretKey"]) != dryRunSecret || !strings.Contains(out, "node user dr-node-cluster-1 (policy dr-node-cluster-1: put, get and list on s3://backups/k3s, no delete): would be created") {
		t.Errorf("dry run: %v, secret key %q, said:\n%s", err, data["secretKey"], out)
	}
	admin, err := minioadmin.New(minioadmin.Config{Endpoint: srv.Endpoint, AccessKey: srv.RootAccessKey, SecretKey: srv.RootSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserInfo(ctx, "dr-node-cluster-1"); !errors.Is(err, minioadmin.ErrNoSuchUser) {
		t.Errorf("after a dry run, user info: %v; want ErrNoSuchUser", err)
	}
	o.DryRun = false

	data, out, err = runNodeStore(t, o, errOut, &existingState{})
	if err != nil {
		t.Fatalf("install with admin credentials: %v\n%s", err, out)
	}
	if string(data["accessKey"]) != "dr-node-cluster-1" || len(data["secretKey"]) != 40 || string(data[ScopeKey]) != ScopePutGet {
		t.Errorf("Secret %s: access key %q, %d-byte secret, scope %q; want dr-node-cluster-1, 40 bytes, %s", NodeStoreSecret, data["accessKey"], len(data["secretKey"]), data[ScopeKey], ScopePutGet)
	}
	if !strings.Contains(out, "node user dr-node-cluster-1 (policy dr-node-cluster-1: put, get and list on s3://backups/k3s, no delete): created") ||
		!strings.Contains(out, "put and get, delete refused (scoped)") {
		t.Errorf("install said:\n%s", out)
	}
	noAdminCreds("first install", data, out)
	t.Logf("install said:\n%s", out)
	node := s3As(string(data["accessKey"]), string(data["secretKey"]))
	body := []byte("snapshot")
	if _, err := node.PutObject(ctx, "backups", "k3s/cluster-1/etcd/a.db", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put as the node user: %v", err)
	}
	err = node.RemoveObject(ctx, "backups", "k3s/cluster-1/etcd/a.db", minio.RemoveObjectOptions{})
	if resp := minio.ToErrorResponse(err); resp.StatusCode != http.StatusForbidden || resp.Code != "AccessDenied" {
		t.Errorf("delete as the node user: %v; want 403 AccessDenied", err)
	}

	// A re-run over the Secret keeps its key.
	ex := &existingState{secrets: map[string]map[string][]byte{NodeStoreSecret: data}}
	again, out, err := runNodeStore(t, o, errOut, ex)
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	if !bytes.Equal(again["secretKey"], data["secretKey"]) || !strings.Contains(out, "): kept with its secret key in Secret dr-store-node") {
		t.Errorf("re-run changed the key (%v) or said:\n%s", !bytes.Equal(again["secretKey"], data["secretKey"]), out)
	}
	// A Secret whose key MinIO no longer takes: a new key, in both.
	stale := map[string][]byte{}
	for k, v := range data {
		stale[k] = v
	}
	stale["secretKey"] = []byte("a-key-minio-does-not-know-0123456789")
	ex.secrets[NodeStoreSecret] = stale
	rotated, out, err := runNodeStore(t, o, errOut, ex)
	if err != nil {
		t.Fatalf("re-run over a stale Secret: %v\n%s", err, out)
	}
	if bytes.Equal(rotated["secretKey"], stale["secretKey"]) || bytes.Equal(rotated["secretKey"], data["secretKey"]) || !strings.Contains(out, "): given a new secret key") {
		t.Errorf("re-run over a stale Secret: key %q, said:\n%s", rotated["secretKey"], out)
	}
	if _, err := s3As("dr-node-cluster-1", string(rotated["secretKey"])).PutObject(ctx, "backups", "k3s/cluster-1/etcd/b.db", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Errorf("put with the Secret's new key: %v", err)
	}
	if _, err := s3As("dr-node-cluster-1", string(data["secretKey"])).PutObject(ctx, "backups", "k3s/cluster-1/etcd/c.db", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err == nil {
		t.Error("the key before the new one still works: MinIO holds two")
	}

	// A check that fails for another reason than MinIO refusing the key
	// (here the bucket is missing) leaves the key alone: a re-run with the
	// right store keeps it.
	ex.secrets[NodeStoreSecret] = rotated
	o.store.URL = "s3://missing/k3s"
	_, out, err = runNodeStore(t, o, errOut, ex)
	if err == nil || !strings.Contains(err.Error(), `bucket "missing" does not exist`) || !strings.Contains(err.Error(), "nothing was applied to the cluster") || strings.Contains(out, "new secret key") {
		t.Errorf("a store whose bucket is missing: %v; said:\n%s", err, out)
	}
	o.store.URL = "s3://backups/k3s"
	kept, out, err := runNodeStore(t, o, errOut, ex)
	if err != nil || !bytes.Equal(kept["secretKey"], rotated["secretKey"]) || !strings.Contains(out, "): kept with its secret key") {
		t.Errorf("re-run after a failed check: %v, key kept %v; said:\n%s", err, bytes.Equal(kept["secretKey"], rotated["secretKey"]), out)
	}

	for _, tt := range []struct {
		name, access, secret string
		want                 error
		text                 string
	}{
		{"a wrong admin secret", srv.RootAccessKey, "not-the-root-secret", minioadmin.ErrNotAdmin, "refused --store-admin-access-key-file/--store-admin-secret-key-file"},
		{"the node user's own", "dr-node-cluster-1", string(rotated["secretKey"]), minioadmin.ErrNotAdmin, "give a MinIO admin's credentials"},
	} {
		bad, badOut := adminOptions(t, srv.Endpoint, tt.access, tt.secret)
		bad.store.URL = "s3://backups/other"
		_, out, err := runNodeStore(t, bad, badOut, &existingState{})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), "nothing was applied") {
			t.Errorf("%s: %v; want %v saying %q and nothing was applied", tt.name, err, tt.want, tt.text)
		}
		if strings.Contains(out, "created") || strings.Contains(err.Error(), tt.secret) {
			t.Errorf("%s: printed %q, error %q", tt.name, out, err)
		}
	}
}

// A store that answers the admin paths as S3 does (XML; a fake standing
// in for AWS S3 or SeaweedFS, which do not run here) is refused with how
// to make the user by hand, before anything is written.
func TestInstallRefusesAdminCredentialsForANonMinIOStoreFake(t *testing.T) {
	var methods []string
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
	}))
	defer s3.Close()
	o, errOut := adminOptions(t, s3.URL, "AKIAEXAMPLE", "admin-secret-example")
	_, _, err := runNodeStore(t, o, errOut, &existingState{})
	if !errors.Is(err, minioadmin.ErrNotMinIO) || !strings.Contains(err.Error(), "make the node user by hand (docs/security.md has the policy)") || !strings.Contains(err.Error(), "nothing was applied") {
		t.Errorf("a store that is not MinIO: %v", err)
	}
	if len(methods) != 1 || methods[0] != http.MethodGet {
		t.Errorf("requests to the store that is not MinIO: %v; want one GET", methods)
	}
}
