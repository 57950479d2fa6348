package install

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/nodecreds"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NodeStoreSecret is what the DaemonSet mounts of the store: the same
// keys as Secret dr-store (which stays for the plugin), with the node
// credentials, and scope "put-get" when they may not delete or "full"
// when they are the store's own.
const (
	NodeStoreSecret = "dr-store-node"
	ScopeKey        = "scope"
	ScopePutGet     = "put-get"
	ScopeFull       = "full"
)

// nodeStore is what the nodes get of the store.
type nodeStore struct {
	creds  nodecreds.Creds
	scoped bool
	// how says where the credentials came from, for install's output.
	how string
	// access is the check's result when it ran already.
	access *objstore.Access
}

// validateNodeStore checks the credential and lock flags together.
func (o *Options) validateNodeStore() error {
	if (o.StoreNodeAccessKeyFile == "") != (o.StoreNodeSecretKeyFile == "") {
		return cmdutil.UsageError("--store-node-access-key-file and --store-node-secret-key-file go together")
	}
	if (o.StoreAdminAccessKeyFile == "") != (o.StoreAdminSecretKeyFile == "") {
		return cmdutil.UsageError("--store-admin-access-key-file and --store-admin-secret-key-file go together")
	}
	if o.StoreAdminAccessKeyFile != "" && o.StoreNodeAccessKeyFile != "" {
		return cmdutil.UsageError("--store-admin-* makes the node credentials, --store-node-* gives them: use one")
	}
	if o.ObjectLockDays < 0 {
		return cmdutil.UsageError("--object-lock-days %d: want 1 or more (0: leave the bucket's lock alone)", o.ObjectLockDays)
	}
	switch o.ObjectLockMode {
	case objstore.LockGovernance, objstore.LockCompliance:
	default:
		return cmdutil.UsageError("--object-lock-mode %q: want %s or %s", o.ObjectLockMode, objstore.LockGovernance, objstore.LockCompliance)
	}
	if o.CreateBucket && o.ObjectLockDays == 0 {
		return cmdutil.UsageError("--create-bucket goes with --object-lock-days (restic creates a bucket without lock itself)")
	}
	return nil
}

// objectLock sets the bucket's default retention when asked; it runs
// before the store is checked, as it may create the bucket.
func (o *Options) objectLock(ctx context.Context) error {
	if o.ObjectLockDays == 0 {
		return nil
	}
	if !strings.HasPrefix(o.store.URL, "s3://") {
		return cmdutil.UsageError("--object-lock-days needs an s3:// store (%s is not)", o.store.URL)
	}
	if o.DryRun {
		fmt.Fprintf(o.ErrOut, "object lock: would set %s retention of %d days on the bucket of %s (dry run)\n", o.ObjectLockMode, o.ObjectLockDays, o.store.URL)
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := objstore.SetObjectLock(cctx, o.store, objstore.LockSettings{Mode: o.ObjectLockMode, Days: o.ObjectLockDays, Create: o.CreateBucket})
	if err != nil {
		return fmt.Errorf("object lock: %w\nnothing was applied", err)
	}
	if res.Created {
		fmt.Fprintf(o.ErrOut, "bucket of %s created with object lock and versioning\n", o.store.URL)
	}
	before := ""
	if res.Before != "" {
		before = " (was " + strings.ToLower(res.Before) + ")"
	}
	fmt.Fprintf(o.ErrOut, "object lock: every new object in the bucket is kept %d days (%s)%s; retention keeps locked objects until their date\n", o.ObjectLockDays, o.ObjectLockMode, before)
	return nil
}

// nodeStore decides the nodes' credentials: made in MinIO with
// --store-admin-*, given with --store-node-*, kept from an earlier
// install, or (without any) the store's own, which install says.
func (o *Options) nodeStore(ctx context.Context, clusterID string, ex *existingState) (nodeStore, error) {
	full := nodeStore{creds: nodecreds.Creds{AccessKey: o.store.AccessKey, SecretKey: o.store.SecretKey}, how: "the store's own"}
	if !strings.HasPrefix(o.store.URL, "s3://") {
		if o.StoreAdminAccessKeyFile != "" {
			return nodeStore{}, cmdutil.UsageError("--store-admin-access-key-file needs an s3:// store on MinIO (%s is not)", o.store.URL)
		}
		return full, nil
	}
	old := ex.secrets[NodeStoreSecret]
	var prev *nodecreds.Creds
	if string(old[ScopeKey]) == ScopePutGet && len(old["accessKey"]) > 0 {
		prev = &nodecreds.Creds{AccessKey: string(old["accessKey"]), SecretKey: string(old["secretKey"])}
	}
	switch {
	case o.StoreAdminAccessKeyFile != "":
		return o.adminNodeStore(ctx, clusterID, prev)
	case o.StoreNodeAccessKeyFile != "":
		access, err := readKeyFile(o.StoreNodeAccessKeyFile, "--store-node-access-key-file")
		if err != nil {
			return nodeStore{}, err
		}
		secret, err := readKeyFile(o.StoreNodeSecretKeyFile, "--store-node-secret-key-file")
		if err != nil {
			return nodeStore{}, err
		}
		return nodeStore{creds: nodecreds.Creds{AccessKey: access, SecretKey: secret}, scoped: true, how: "given (--store-node-*)"}, nil
	case prev != nil && prev.AccessKey != o.store.AccessKey:
		return nodeStore{creds: *prev, scoped: true, how: "kept from the earlier install"}, nil
	}
	return full, nil
}

// checkNodeStore writes to the store with the node credentials from here:
// put and get must work; a delete should be refused. Credentials that can
// delete are not scoped, whatever their origin: it returns n so marked.
func (o *Options) checkNodeStore(ctx context.Context, clusterID string, n nodeStore) (nodeStore, error) {
	if !n.scoped {
		if strings.HasPrefix(o.store.URL, "s3://") {
			fmt.Fprintf(o.ErrOut, "warning: the nodes hold the store's full credentials: a compromised node can delete every backup. Scope them: make put/get-only credentials (docs/security.md has the IAM policy, and the mc commands for MinIO) and give them with --store-node-access-key-file/--store-node-secret-key-file\n")
		}
		return n, nil
	}
	if o.DryRun {
		return n, nil
	}
	var access objstore.Access
	var err error
	if n.access != nil {
		access = *n.access
	} else {
		access, err = o.probeNode(ctx, clusterID, n.creds)
	}
	if err != nil {
		if o.Force {
			fmt.Fprintf(o.ErrOut, "warning: node credentials: %v; installing anyway (--force)\n", err)
			return n, nil
		}
		return n, fmt.Errorf("node credentials (%s): %w\nnothing was applied: fix their policy (put, get and list on the bucket and prefix; docs/security.md) or pass --force", n.how, err)
	}
	if access.CanDelete {
		fmt.Fprintf(o.ErrOut, "warning: the node credentials (%s) can delete objects: they are not scoped (the agents delete themselves); docs/security.md has the policy that denies deletes\n", n.how)
		n.scoped = false
		return n, nil
	}
	fmt.Fprintf(o.ErrOut, "node credentials (%s): put and get, delete refused (scoped): deletions (retention, rm, prune) run from the plugin with Secret %s (kubectl dr prune)\n", n.how, cmdutil.StoreSecret)
	return n, nil
}

// probeNode writes to the store as the nodes will: put and get must work,
// and the result says whether a delete was refused.
func (o *Options) probeNode(ctx context.Context, clusterID string, creds nodecreds.Creds) (objstore.Access, error) {
	c := o.store
	c.AccessKey, c.SecretKey = creds.AccessKey, creds.SecretKey
	store, err := objstore.Open(c)
	if err != nil {
		return objstore.Access{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return objstore.Probe(cctx, store.Sub(clusterID))
}

// nodeSecretData is Secret dr-store-node.
func nodeSecretData(c objstore.Config, n nodeStore) map[string][]byte {
	c.AccessKey, c.SecretKey = n.creds.AccessKey, n.creds.SecretKey
	d := storeSecretData(c)
	d[ScopeKey] = []byte(ScopeFull)
	if n.scoped {
		d[ScopeKey] = []byte(ScopePutGet)
	}
	return d
}

func readKeyFile(path, flag string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", cmdutil.UsageError("read %s: %w", flag, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", cmdutil.UsageError("%s %s is empty", flag, path)
	}
	return v, nil
}
