package install

import (
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/nodecreds"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func TestValidateNodeStore(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{ObjectLockMode: "governance"}, ""},
		{Options{ObjectLockMode: "governance", StoreNodeAccessKeyFile: "a"}, "go together"},
		{Options{ObjectLockMode: "governance", StoreNodeSecretKeyFile: "s"}, "go together"},
		{Options{ObjectLockMode: "governance", StoreNodeAccessKeyFile: "a", StoreNodeSecretKeyFile: "s"}, ""},
		{Options{ObjectLockMode: "governance", StoreAdminAccessKeyFile: "a"}, "--store-admin-access-key-file and --store-admin-secret-key-file go together"},
		{Options{ObjectLockMode: "governance", StoreAdminSecretKeyFile: "s"}, "go together"},
		{Options{ObjectLockMode: "governance", StoreAdminAccessKeyFile: "a", StoreAdminSecretKeyFile: "s"}, ""},
		{Options{ObjectLockMode: "governance", StoreAdminAccessKeyFile: "a", StoreAdminSecretKeyFile: "s", StoreNodeAccessKeyFile: "a", StoreNodeSecretKeyFile: "s"}, "--store-admin-* makes the node credentials, --store-node-* gives them: use one"},
		{Options{ObjectLockMode: "forever", ObjectLockDays: 1}, `--object-lock-mode "forever"`},
		{Options{ObjectLockMode: "compliance", ObjectLockDays: -1}, "want 1 or more"},
		{Options{ObjectLockMode: "governance", CreateBucket: true}, "--create-bucket goes with --object-lock-days"},
		{Options{ObjectLockMode: "compliance", ObjectLockDays: 30, CreateBucket: true}, ""},
	} {
		err := tt.o.validateNodeStore()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.o, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: %v; want %q", tt.o, err, tt.want)
		}
	}
}

// The nodes' Secret has the store's settings with the node credentials and
// says their scope; the plugin's keeps its own.
func TestNodeSecretData(t *testing.T) {
	c := objstore.Config{URL: "s3://b/p", Endpoint: "http://m:9000", AccessKey: "admin", SecretKey: "adminsecret", CAPEM: []byte("PEM")}
	d := nodeSecretData(c, nodeStore{creds: nodecreds.Creds{AccessKey: "node", SecretKey: "nodesecret"}, scoped: true})
	if string(d["accessKey"]) != "node" || string(d["secretKey"]) != "nodesecret" || string(d[ScopeKey]) != ScopePutGet ||
		string(d["url"]) != "s3://b/p" || string(d["endpoint"]) != "http://m:9000" || string(d["ca.crt"]) != "PEM" {
		t.Errorf("node Secret: %q", d)
	}
	if d := nodeSecretData(c, nodeStore{creds: nodecreds.Creds{AccessKey: "admin", SecretKey: "adminsecret"}}); string(d[ScopeKey]) != ScopeFull {
		t.Errorf("full credentials recorded as scope %q", d[ScopeKey])
	}
	if s := storeSecretData(c); string(s["accessKey"]) != "admin" {
		t.Errorf("dr-store holds %q", s["accessKey"])
	}
}
