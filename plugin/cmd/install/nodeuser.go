package install

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin"
	"github.com/kubectl-dr/kubectl-dr/internal/store/nodecreds"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// NodeUserPrefix names what install makes in MinIO with --store-admin-*:
// the user and its policy are both dr-node-<clusterID>.
const NodeUserPrefix = "dr-node-"

// dryRunSecret stands in the rendered Secret for a key install would make.
const dryRunSecret = "(made by install without --dry-run)"

// adminNodeStore makes the nodes' MinIO user with the admin credentials
// given once: the policy (put/get/list on the store, no delete), the user
// with it attached, checked as checkNodeStore checks given credentials.
// The user's secret key stays when the Secret of an earlier install holds
// it and it still passes the check; when MinIO refuses it, or the Secret
// holds no key of the user, the user gets a new random one, which the
// Secret then holds. A check failing otherwise (the store unreachable)
// changes no key: MinIO and the Secret never disagree on a key the nodes
// use. The admin credentials go nowhere but into the requests'
// signatures.
func (o *Options) adminNodeStore(ctx context.Context, clusterID string, prev *nodecreds.Creds) (nodeStore, error) {
	u, err := url.Parse(o.store.URL)
	if err != nil || u.Scheme != "s3" {
		return nodeStore{}, fmt.Errorf("--store-admin-access-key-file needs an s3:// store (%s is not)", o.store.URL)
	}
	admin, err := o.adminClient()
	if err != nil {
		return nodeStore{}, err
	}
	doc, err := nodecreds.Policy(u.Host, u.Path)
	if err != nil {
		return nodeStore{}, err
	}
	user := minioadmin.NodeUser{AccessKey: NodeUserPrefix + clusterID, Policy: NodeUserPrefix + clusterID, Document: doc}
	keep := prev != nil && prev.AccessKey == user.AccessKey
	what := fmt.Sprintf("node user %s (policy %s: put, get and list on %s, no delete)", user.AccessKey, user.Policy, o.store.URL)
	if o.DryRun {
		_, err := admin.UserInfo(ctx, user.AccessKey)
		switch {
		case err == nil && keep:
			fmt.Fprintf(o.ErrOut, "%s: would be kept, or given a new secret key if Secret %s's no longer passes the check (dry run)\n", what, NodeStoreSecret)
			return nodeStore{creds: *prev, scoped: true, how: "node user " + user.AccessKey}, nil
		case err == nil || errors.Is(err, minioadmin.ErrNoSuchUser):
			fmt.Fprintf(o.ErrOut, "%s: would be created or given a new secret key (dry run)\n", what)
			return nodeStore{creds: nodecreds.Creds{AccessKey: user.AccessKey, SecretKey: dryRunSecret}, scoped: true, how: "node user " + user.AccessKey}, nil
		}
		return nodeStore{}, o.adminError(err)
	}

	fresh, err := randomSecret()
	if err != nil {
		return nodeStore{}, err
	}
	done, err := admin.Ensure(ctx, user, fresh, keep)
	if err != nil {
		return nodeStore{}, o.adminError(err)
	}
	creds := nodecreds.Creds{AccessKey: user.AccessKey, SecretKey: fresh}
	if !done.SecretSet {
		creds = *prev
	}
	access, err := o.probeNodeUser(ctx, clusterID, creds, done.SecretSet)
	if !done.SecretSet && (errors.Is(err, objstore.ErrDenied) || errors.Is(err, objstore.ErrUnknownCredentials)) {
		// MinIO refuses the key the Secret holds: a new one, which the
		// Secret gets. Only then: a key refused for another reason (the
		// store unreachable from here) may still be the nodes' working one.
		if err := admin.SetUser(ctx, user.AccessKey, fresh); err != nil {
			return nodeStore{}, o.adminError(err)
		}
		done.SecretSet, creds.SecretKey = true, fresh
		access, err = o.probeNodeUser(ctx, clusterID, creds, true)
	}
	switch {
	case !done.Existed:
		fmt.Fprintf(o.ErrOut, "%s: created; the admin credentials were used for this only and are not kept\n", what)
	case done.SecretSet:
		fmt.Fprintf(o.ErrOut, "%s: given a new secret key (Secret %s held none of its that MinIO takes); the admin credentials are not kept\n", what, NodeStoreSecret)
	default:
		fmt.Fprintf(o.ErrOut, "%s: kept with its secret key in Secret %s; the admin credentials are not kept\n", what, NodeStoreSecret)
	}
	n := nodeStore{creds: creds, scoped: true, how: "node user " + user.AccessKey + ", made by install"}
	switch {
	case err != nil && o.Force:
		// checkNodeStore checks again and warns.
		return n, nil
	case err != nil:
		return nodeStore{}, fmt.Errorf("%s fails the check: %w\nnothing was applied to the cluster: check the store's bucket and the MinIO server's IAM, or pass --force", what, err)
	case access.CanDelete:
		return nodeStore{}, fmt.Errorf("%s can delete objects: it has another policy attached besides %s; detach it (mc admin policy detach ALIAS POLICY --user %s) and run install again\nnothing was applied to the cluster", what, user.Policy, user.AccessKey)
	}
	n.access = &access
	return n, nil
}

// adminClient reads --store-admin-* and reaches the store's endpoint as
// the store's own client does (its CA, its region).
func (o *Options) adminClient() (*minioadmin.Client, error) {
	access, err := readKeyFile(o.StoreAdminAccessKeyFile, "--store-admin-access-key-file")
	if err != nil {
		return nil, err
	}
	secret, err := readKeyFile(o.StoreAdminSecretKeyFile, "--store-admin-secret-key-file")
	if err != nil {
		return nil, err
	}
	cfg := minioadmin.Config{Endpoint: o.store.Endpoint, Region: o.store.Region, AccessKey: access, SecretKey: secret}
	if len(o.store.CAPEM) > 0 {
		tr, err := objstore.TransportWithCA(o.store.CAPEM)
		if err != nil {
			return nil, fmt.Errorf("the store's CA: %w", err)
		}
		cfg.Transport = tr
	}
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("--store-admin-access-key-file needs the MinIO endpoint (--s3-endpoint)")
	}
	return minioadmin.New(cfg)
}

// adminError says what to do when the admin API refused.
func (o *Options) adminError(err error) error {
	switch {
	case errors.Is(err, minioadmin.ErrNotMinIO):
		return fmt.Errorf("%s does not answer MinIO's admin API: %w\nnothing was applied: make the node user by hand (docs/security.md has the policy) and give it with --store-node-access-key-file and --store-node-secret-key-file", o.store.Endpoint, err)
	case errors.Is(err, minioadmin.ErrNotAdmin):
		return fmt.Errorf("MinIO at %s refused --store-admin-access-key-file/--store-admin-secret-key-file: %w\nnothing was applied: give a MinIO admin's credentials (the root user's, or a user with admin:GetUser, admin:CreateUser, admin:CreatePolicy and admin:AttachUserOrGroupPolicy)", o.store.Endpoint, err)
	}
	return fmt.Errorf("make the node user in MinIO at %s: %w\nnothing was applied to the cluster: fix what MinIO says, or make the node user by hand (docs/security.md) and give it with --store-node-*", o.store.Endpoint, err)
}

// probeNodeUser runs the node check with the user's credentials; a user
// just given its key may take a moment to reach every MinIO server, so a
// refusal is asked again for a few seconds.
func (o *Options) probeNodeUser(ctx context.Context, clusterID string, creds nodecreds.Creds, fresh bool) (objstore.Access, error) {
	tries := 1
	if fresh {
		tries = 5
	}
	for i := 1; ; i++ {
		access, err := o.probeNode(ctx, clusterID, creds)
		if err == nil || i == tries {
			return access, err
		}
		select {
		case <-ctx.Done():
			return objstore.Access{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// randomSecret is a new user's secret key: 30 random bytes, 40 characters.
func randomSecret() (string, error) {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
