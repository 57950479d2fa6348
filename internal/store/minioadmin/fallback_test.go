package minioadmin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// A server without the builtin IDP's attach call (a fake standing in for
// an older MinIO, which does not run here) answers it as MinIO answers an
// unknown admin path, 400 BadRequest; AttachPolicy then sets the policy
// with set-user-or-group-policy. Every request is signed for the admin.
func TestAttachFallsBackOnAnOlderServerFake(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=admin/") || r.Header.Get("X-Amz-Content-Sha256") == "" {
			t.Errorf("%s %s: not signed for the admin: %q", r.Method, r.URL, r.Header.Get("Authorization"))
		}
		calls = append(calls, r.Method+" "+strings.TrimPrefix(r.URL.Path, apiPrefix)+"?"+r.URL.RawQuery)
		if r.URL.Path == apiPrefix+"idp/builtin/policy/attach" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"Code":"BadRequest","Message":"400 BadRequest","Resource":"/minio/admin/v3/idp/builtin/policy/attach"}`))
		}
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, AccessKey: "admin", SecretKey: "admin-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AttachPolicy(context.Background(), "dr-node-c1", "dr-node-c1"); err != nil {
		t.Fatalf("attach on an older server: %v", err)
	}
	want := []string{"POST idp/builtin/policy/attach?", "PUT set-user-or-group-policy?isGroup=false&policyName=dr-node-c1&userOrGroup=dr-node-c1"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls: %q; want %q", calls, want)
	}
}

// An attach the server refuses for a reason of its own (no such policy)
// is that error, not a second try.
func TestAttachOfAMissingPolicyFake(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"Code":"XMinioAdminNoSuchPolicy","Message":"The canned policy does not exist."}`))
	}))
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL, AccessKey: "admin", SecretKey: "admin-secret"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.AttachPolicy(context.Background(), "u", "p")
	if err == nil || !strings.Contains(err.Error(), "attach policy p to u: HTTP 400 XMinioAdminNoSuchPolicy: The canned policy does not exist.") || calls != 1 {
		t.Errorf("attach of a missing policy: %v after %d calls", err, calls)
	}
}
