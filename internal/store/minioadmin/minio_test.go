package minioadmin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin/miniotest"
	"github.com/kubectl-dr/kubectl-dr/internal/store/nodecreds"
)

// recorder notes each admin call and its answer's status.
type recorder struct{ calls []string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.calls = append(r.calls, fmt.Sprintf("%s %s %d", req.Method, strings.TrimPrefix(req.URL.Path, apiPrefix), resp.StatusCode))
	}
	return resp, err
}

func s3Client(t *testing.T, endpoint, access, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// putGetDelete puts and gets an object as the user and tries to delete
// it: the error of each step.
func putGetDelete(ctx context.Context, t *testing.T, c *minio.Client, key string) (put, get, del error) {
	t.Helper()
	body := []byte("node bytes")
	if _, put = c.PutObject(ctx, "backups", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); put != nil {
		return put, nil, nil
	}
	obj, err := c.GetObject(ctx, "backups", key, minio.GetObjectOptions{})
	if err == nil {
		var got []byte
		if got, err = io.ReadAll(obj); err == nil && !bytes.Equal(got, body) {
			err = errors.New("read back other bytes: " + string(got))
		}
		obj.Close()
	}
	return nil, err, c.RemoveObject(ctx, "backups", key, minio.RemoveObjectOptions{})
}

// On a real MinIO: Ensure makes the policy and the user and attaches it;
// the user puts and gets under the prefix and is refused a delete. A
// second Ensure keeping the key changes nothing; one that does not keep it
// gives the user the new key. A wrong admin secret and a non-admin user
// are ErrNotAdmin and change nothing.
func TestMinIONodeUser(t *testing.T) {
	srv := miniotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := s3Client(t, srv.Endpoint, srv.RootAccessKey, srv.RootSecretKey)
	if err := root.MakeBucket(ctx, "backups", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	admin, err := New(Config{Endpoint: srv.Endpoint, AccessKey: srv.RootAccessKey, SecretKey: srv.RootSecretKey, Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := nodecreds.Policy("backups", "k3s")
	if err != nil {
		t.Fatal(err)
	}
	u := NodeUser{AccessKey: "dr-node-5b0f8a52-7d0e-4b38-9d47-2f0a7c1e6a11", Policy: "dr-node-5b0f8a52-7d0e-4b38-9d47-2f0a7c1e6a11", Document: doc}
	if _, err := admin.UserInfo(ctx, u.AccessKey); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("user info before: %v; want ErrNoSuchUser", err)
	}
	rec.calls = nil

	r, err := admin.Ensure(ctx, u, "first-secret-0123456789", true)
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if r != (Ensured{Existed: false, SecretSet: true}) {
		t.Errorf("first ensure: %+v", r)
	}
	want := []string{"GET user-info 404", "PUT add-canned-policy 200", "PUT add-user 200", "POST idp/builtin/policy/attach 200"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls of the first ensure: %q; want %q", rec.calls, want)
	}
	info, err := admin.UserInfo(ctx, u.AccessKey)
	if err != nil || info.Status != "enabled" || len(info.Policies) != 1 || info.Policies[0] != u.Policy {
		t.Errorf("user info: %+v, %v; want enabled with policy %s only", info, err, u.Policy)
	}
	node := s3Client(t, srv.Endpoint, u.AccessKey, "first-secret-0123456789")
	put, get, del := putGetDelete(ctx, t, node, "k3s/cluster/etcd/a.db")
	if put != nil || get != nil {
		t.Fatalf("node user: put %v, get %v", put, get)
	}
	if resp := minio.ToErrorResponse(del); resp.StatusCode != http.StatusForbidden || resp.Code != "AccessDenied" {
		t.Errorf("node user's delete: %v; want 403 AccessDenied", del)
	}
	if put, _, _ := putGetDelete(ctx, t, node, "elsewhere/a"); minio.ToErrorResponse(put).Code != "AccessDenied" {
		t.Errorf("node user's put outside the prefix: %v; want AccessDenied", put)
	}

	// Again, keeping the key: the user stays as it is.
	r, err = admin.Ensure(ctx, u, "second-secret-0123456789", true)
	if err != nil || r != (Ensured{Existed: true}) {
		t.Fatalf("ensure again: %+v, %v; want existed, key kept", r, err)
	}
	if put, get, _ := putGetDelete(ctx, t, node, "k3s/cluster/b"); put != nil || get != nil {
		t.Errorf("the kept key after a second ensure: put %v, get %v", put, get)
	}
	// Not keeping it: the new key works, the old does not.
	r, err = admin.Ensure(ctx, u, "third-secret-0123456789", false)
	if err != nil || r != (Ensured{Existed: true, SecretSet: true}) {
		t.Fatalf("ensure with a new key: %+v, %v", r, err)
	}
	if put, _, _ := putGetDelete(ctx, t, node, "k3s/cluster/c"); put == nil {
		t.Error("the old key still puts after the user got a new one")
	}
	rotated := s3Client(t, srv.Endpoint, u.AccessKey, "third-secret-0123456789")
	if put, get, _ := putGetDelete(ctx, t, rotated, "k3s/cluster/d"); put != nil || get != nil {
		t.Errorf("the new key: put %v, get %v", put, get)
	}
	// Attaching an attached policy is no change, not an error (MinIO
	// answers 400 XMinioAdminPolicyChangeAlreadyApplied), nor a fallback.
	rec.calls = nil
	if err := admin.AttachPolicy(ctx, u.AccessKey, u.Policy); err != nil {
		t.Errorf("attach an attached policy: %v", err)
	}
	if want := []string{"POST idp/builtin/policy/attach 400"}; !slices.Equal(rec.calls, want) {
		t.Errorf("calls of attaching an attached policy: %q; want %q", rec.calls, want)
	}

	wrong, err := New(Config{Endpoint: srv.Endpoint, AccessKey: srv.RootAccessKey, SecretKey: "not-the-root-secret"})
	if err != nil {
		t.Fatal(err)
	}
	other := NodeUser{AccessKey: "dr-node-other", Policy: "dr-node-other", Document: doc}
	if _, err := wrong.Ensure(ctx, other, "other-secret-0123456789", false); !errors.Is(err, ErrNotAdmin) || !strings.Contains(err.Error(), "HTTP 403 SignatureDoesNotMatch") {
		t.Errorf("ensure with a wrong admin secret: %v; want ErrNotAdmin, HTTP 403 SignatureDoesNotMatch", err)
	}
	notAdmin, err := New(Config{Endpoint: srv.Endpoint, AccessKey: u.AccessKey, SecretKey: "third-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = notAdmin.Ensure(ctx, other, "other-secret-0123456789", false)
	if !errors.Is(err, ErrNotAdmin) || !strings.Contains(err.Error(), "HTTP 403 AccessDenied") {
		t.Errorf("ensure as the node user: %v; want ErrNotAdmin, HTTP 403 AccessDenied", err)
	}
	if _, err := admin.UserInfo(ctx, other.AccessKey); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("refused ensures made user %s: %v", other.AccessKey, err)
	}
}

// What an S3 server that is not MinIO's admin API answers (here MinIO's
// own S3 API, outside the admin paths: XML) is ErrNotMinIO, not
// ErrNotAdmin, though it may be a 403 or 404.
func TestMinIOS3AnswerIsNotTheAdminAPI(t *testing.T) {
	srv := miniotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := New(Config{Endpoint: srv.Endpoint, AccessKey: srv.RootAccessKey, SecretKey: srv.RootSecretKey})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = admin.do(ctx, http.MethodGet, "/minio-admin/v3/user-info", nil, nil)
	if !errors.Is(err, ErrNotMinIO) || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("an S3 answer: %v; want ErrNotMinIO quoting NoSuchBucket", err)
	}
}
