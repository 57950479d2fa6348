package objects

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// encryptionConfigFile is where k3s keeps its EncryptionConfiguration,
// relative to the data dir; the agents keep it beside each snapshot.
const encryptionConfigFile = "server/cred/encryption-config.json"

// Source names a restore point: a snapshot, a backup set's snapshot or the
// newest, and what reading it takes.
type Source struct {
	Snapshot         string
	Backup           string
	Latest           bool
	KeyFile          string
	EncryptionConfig string
	FromCluster      string
	// AllowUnsigned reads a snapshot whose record carries no signature
	// (or, of another cluster, one this install cannot check).
	AllowUnsigned bool

	// verb names what the command does with the snapshot, for errors.
	verb string
}

func (s *Source) bind(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&s.Backup, "backup", "", "read the etcd snapshot of backup set ID")
	fs.BoolVar(&s.Latest, "latest", false, "read the newest etcd snapshot")
	fs.StringVar(&s.KeyFile, "key-file", "", "snapshot key (age identity) (default $"+cmdutil.EnvSnapshotKey+", else the install's Secret "+cmdutil.SnapshotKeySecret+")")
	fs.StringVar(&s.EncryptionConfig, "encryption-config", "", "EncryptionConfiguration that decrypts Secrets encrypted at rest (default: the one kept beside the snapshot; k3s's is <data-dir>/"+encryptionConfigFile+")")
	fs.StringVar(&s.FromCluster, "from-cluster", "", "read the backups of cluster ID (its kube-system namespace UID), e.g. the cluster this one replaces")
	fs.BoolVar(&s.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage+"; with --from-cluster, also one signed under another install's CA, unchecked")
}

// validate checks that exactly one restore point is named.
func (s *Source) validate() error {
	n := 0
	for _, set := range []bool{s.Snapshot != "", s.Backup != "", s.Latest} {
		if set {
			n++
		}
	}
	if n != 1 {
		return cmdutil.UsageError("name one restore point: SNAPSHOT, --backup ID or --latest")
	}
	return nil
}

// restorePoint is an open snapshot: fetched, verified and readable.
type restorePoint struct {
	snap    *dbsnap.Snapshot
	dir     string
	kv      *kvsnap.Snapshot
	decoder *registry.Decoder

	// loadEncryption fetches the encryption config the first time an
	// encrypted value is met.
	loadEncryption func() (*registry.Encryption, error)
	encryptionErr  error
	encryptionDone bool
}

// storeFor opens the store under the cluster the source reads: --from-cluster,
// else the cluster's own.
func storeFor(ctx context.Context, f cmdutil.Factory, from string) (objstore.Store, error) {
	if from == "" {
		return f.OpenStore(ctx)
	}
	cfg := f.StoreConfig()
	if cfg.URL == "" {
		var err error
		if cfg, err = f.StoreFromSecret(ctx); err != nil {
			return nil, fmt.Errorf("%w: give --store or set %s (%v)", cmdutil.ErrNoStore, objstore.EnvStore, err)
		}
	}
	st, err := objstore.Open(cfg)
	if err != nil {
		return nil, err
	}
	return st.Sub(from), nil
}

// records is what the source's records must pass. Another cluster's
// records were signed under its own install's CA, which this one cannot
// check.
func (s *Source) records(ctx context.Context, f cmdutil.Factory) signature.Policy {
	if s.FromCluster != "" {
		return signature.Policy{AllowUnsigned: s.AllowUnsigned}
	}
	return cmdutil.RecordPolicy(ctx, f, s.AllowUnsigned)
}

// resolve finds the snapshot the source names.
func (s *Source) resolve(ctx context.Context, f cmdutil.Factory, store objstore.Store) (*dbsnap.Snapshot, error) {
	list, _, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return nil, err
	}
	name := s.Snapshot
	switch {
	case s.Backup != "":
		set, err := backupset.Verified(ctx, store, s.records(ctx, f), s.Backup)
		if err != nil {
			return nil, err
		}
		if set.Etcd == nil || set.Etcd.Snapshot == "" {
			return nil, fmt.Errorf("backup set %s has no etcd snapshot", set.ID)
		}
		name = set.Etcd.Snapshot
	case s.Latest:
		var uploaded []*dbsnap.Snapshot
		for _, sn := range list {
			if sn.Uploaded {
				uploaded = append(uploaded, sn)
			}
		}
		dbsnap.SortNewestFirst(uploaded)
		if len(uploaded) == 0 {
			return nil, fmt.Errorf("no etcd snapshot in %s: `kubectl dr etcd snapshot save` takes one", store)
		}
		return uploaded[0], nil
	}
	snap, ok := dbsnap.Find(list, name)
	if !ok {
		return nil, fmt.Errorf("no etcd snapshot named %q in %s: `kubectl dr etcd snapshot ls` lists them", name, store)
	}
	return snap, nil
}

// open fetches the snapshot into a temporary directory (verified against
// both checksums) and opens it read-only.
func (s *Source) open(ctx context.Context, f cmdutil.Factory, errOut interface{ Write([]byte) (int, error) }) (*restorePoint, error) {
	store, err := storeFor(ctx, f, s.FromCluster)
	if err != nil {
		return nil, err
	}
	snap, err := s.resolve(ctx, f, store)
	if err != nil {
		return nil, err
	}
	if err := s.checkCluster(ctx, f, snap); err != nil {
		return nil, err
	}
	// What is read is what its node signed (objects restore writes it
	// into the live cluster).
	if snap, _, err = dbsnap.Verified(ctx, store, s.records(ctx, f), snap); err != nil {
		return nil, err
	}
	var id age.Identity
	if snap.Encrypted() || snap.Bootstrap != nil {
		x, err := f.SnapshotKey(ctx, s.KeyFile)
		if err != nil {
			return nil, err
		}
		if x != nil {
			id = x
		}
	}
	dir, err := os.MkdirTemp("", "kubectl-dr-objects-")
	if err != nil {
		return nil, err
	}
	rp := &restorePoint{snap: snap, dir: dir, decoder: registry.NewDecoder()}
	fmt.Fprintf(errOut, "reading %s (revision %d, %d bytes)\n", snap.Name, snap.Revision, snap.Size)
	path := filepath.Join(dir, "snapshot.db")
	if err := dbsnap.FetchCache(ctx, store, snap, id, path); err != nil {
		rp.Close()
		return nil, err
	}
	if rp.kv, err = kvsnap.Open(path); err != nil {
		rp.Close()
		return nil, err
	}
	rp.loadEncryption = func() (*registry.Encryption, error) {
		if s.EncryptionConfig != "" {
			data, err := os.ReadFile(s.EncryptionConfig)
			if err != nil {
				return nil, err
			}
			return registry.ParseEncryption(data)
		}
		files, err := dbsnap.FetchBootstrap(ctx, store, snap, id)
		if err != nil {
			return nil, err
		}
		data, ok := files[encryptionConfigFile]
		if !ok {
			return nil, fmt.Errorf("the files kept beside snapshot %s hold no %s", snap.Name, encryptionConfigFile)
		}
		return registry.ParseEncryption(data)
	}
	return rp, nil
}

// Close removes the fetched copy.
func (rp *restorePoint) Close() {
	if rp.kv != nil {
		rp.kv.Close()
	}
	os.RemoveAll(rp.dir)
}

// object is one decoded object of the restore point.
type object struct {
	registry.Ref
	Key string
	Obj *unstructured.Unstructured
	// Err is why the value could not be decoded.
	Err error
}

// each decodes every object whose key passes keep, in key order. A value
// encrypted at rest that cannot be decrypted stops the read: nothing is
// shown or restored without the Secrets it holds.
func (rp *restorePoint) each(keep func(registry.Ref) bool, fn func(object) error) error {
	_, err := rp.kv.Each(registry.Prefix, func(kv kvsnap.KeyValue) error {
		key := string(kv.Key)
		ref, ok := registry.ParseKey(key)
		if !ok || !keep(ref) {
			return nil
		}
		obj, err := rp.decoder.Decode(key, kv.Value)
		if errors.Is(err, registry.ErrEncrypted) && !rp.encryptionDone {
			rp.encryptionDone = true
			rp.decoder.Encryption, rp.encryptionErr = rp.loadEncryption()
			if rp.encryptionErr == nil {
				obj, err = rp.decoder.Decode(key, kv.Value)
			}
		}
		if errors.Is(err, registry.ErrEncrypted) {
			return rp.encryptionError(ref, err)
		}
		return fn(object{Ref: ref, Key: key, Obj: obj, Err: err})
	})
	return err
}

func (rp *restorePoint) encryptionError(ref registry.Ref, err error) error {
	what := ref.Resource + " " + ref.Name
	if ref.Namespace != "" {
		what = ref.Resource + " " + ref.Namespace + "/" + ref.Name
	}
	if rp.encryptionErr != nil {
		return fmt.Errorf("%s is %v; no encryption config to decrypt it: %v: give --encryption-config FILE (k3s keeps it in <data-dir>/%s on the servers)", what, err, rp.encryptionErr, encryptionConfigFile)
	}
	return fmt.Errorf("%s: %w: give --encryption-config FILE with the key it was encrypted with", what, err)
}

// checkCluster refuses another cluster's snapshot unless --from-cluster
// names it. This cluster is the one the API server answers for; with the
// API server down, the one --cluster-id or $DR_CLUSTER_ID names.
func (s *Source) checkCluster(ctx context.Context, f cmdutil.Factory, snap *dbsnap.Snapshot) error {
	id := snap.ClusterID
	if id == "" || id == s.FromCluster {
		return nil
	}
	this, err := liveClusterID(ctx, f)
	if err != nil {
		if this, err = f.ClusterID(ctx); err != nil {
			return fmt.Errorf("snapshot %s was taken in cluster %s, and which cluster this is cannot be told (%v): pass --from-cluster %s to %s it", snap.Name, id, err, id, s.verb)
		}
	}
	if id != this {
		return fmt.Errorf("snapshot %s was taken in cluster %s, and this is cluster %s: pass --from-cluster %s to %s it", snap.Name, id, this, id, s.verb)
	}
	return nil
}

// liveClusterID is the kube-system namespace's UID, or "" when the API
// server does not answer.
func liveClusterID(ctx context.Context, f cmdutil.Factory) (string, error) {
	cs, err := f.Clientset()
	if err != nil {
		return "", err
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read the kube-system namespace: %w", err)
	}
	return string(ns.UID), nil
}
