package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// EnvClusterID names the cluster in the store when the API server cannot.
const EnvClusterID = "DR_CLUSTER_ID"

// EnvSnapshotKey names the snapshot key file when --key-file is not given.
const EnvSnapshotKey = "DR_SNAPSHOT_KEY"

// ErrNoStore means no store settings were given.
var ErrNoStore = errors.New("no store configured")

// StoreFlags are the settings for reading the store directly, as the
// plugin does when no agent answers.
type StoreFlags struct {
	objstore.Config
	ClusterID string
}

// Secrets `kubectl dr install` creates in the agents' namespace, read when
// flags and environment do not name the store or the snapshot key.
const (
	StoreSecret       = "dr-store"
	SnapshotKeySecret = "dr-snapshot-key"
	SnapshotKeyKey    = "snapshot.key"
)

func (f *factory) BindStoreFlags(fs *pflag.FlagSet) {
	s := &f.store
	fs.StringVar(&s.URL, "store", "", "backup store, s3://BUCKET/PREFIX or file:///PATH (default $"+objstore.EnvStore+")")
	fs.StringVar(&s.Endpoint, "s3-endpoint", "", "S3 endpoint, e.g. https://minio.example:9000 (default $"+objstore.EnvEndpoint+", else AWS)")
	fs.StringVar(&s.Region, "s3-region", "", "S3 region (default $"+objstore.EnvRegion+")")
	fs.BoolVar(&s.PathStyle, "s3-path-style", false, "use path-style bucket addressing")
	fs.StringVar(&s.CAFile, "s3-ca", "", "PEM file of the CA that signed the S3 endpoint's certificate")
	fs.StringVar(&s.AccessKeyFile, "access-key-file", "", "file holding the S3 access key (default $"+objstore.EnvAccessKey+")")
	fs.StringVar(&s.SecretKeyFile, "secret-key-file", "", "file holding the S3 secret key (default $"+objstore.EnvSecretKey+")")
	fs.StringVar(&s.ClusterID, "cluster-id", "", "the cluster's id in the store (the kube-system namespace UID; default from the API server or $"+EnvClusterID+")")
}

func (f *factory) StoreConfig() objstore.Config { return f.store.Config.FromEnv() }

// OpenStore opens the cluster's part of the store from flags and
// environment, else from the install's Secret.
func (f *factory) OpenStore(ctx context.Context) (objstore.Store, error) {
	cfg := f.StoreConfig()
	if cfg.URL == "" {
		var err error
		if cfg, err = f.storeFromSecret(ctx, cfg); err != nil {
			return nil, fmt.Errorf("%w: give --store s3://BUCKET/PREFIX (with --s3-endpoint and credentials) or file:///PATH, or set %s (%v)", ErrNoStore, objstore.EnvStore, err)
		}
	}
	id, err := f.ClusterID(ctx)
	if err != nil {
		return nil, err
	}
	store, err := objstore.Open(cfg)
	if err != nil {
		return nil, err
	}
	return store.Sub(id), nil
}

// ClusterID is --cluster-id, else $DR_CLUSTER_ID, else the kube-system
// namespace's UID from the API server.
func (f *factory) ClusterID(ctx context.Context) (string, error) {
	if f.store.ClusterID != "" {
		return f.store.ClusterID, nil
	}
	if id := os.Getenv(EnvClusterID); id != "" {
		return id, nil
	}
	cs, err := f.Clientset()
	if err == nil {
		var n *corev1.Namespace
		if n, err = cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err == nil {
			return string(n.UID), nil
		}
	}
	return "", fmt.Errorf("cannot tell which cluster's backups to read: the API server did not answer (%v); pass --cluster-id (the kube-system namespace UID, shown by `kubectl dr status -o yaml`)", err)
}

// secret reads a Secret from the agents' namespace.
func (f *factory) secret(ctx context.Context, name string) (map[string][]byte, error) {
	cs, err := f.Clientset()
	if err != nil {
		return nil, err
	}
	s, err := cs.CoreV1().Secrets(f.agentNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", f.agentNamespace, name, err)
	}
	return s.Data, nil
}

// StoreFromSecret reads the store settings install keeps in its Secret.
func (f *factory) StoreFromSecret(ctx context.Context) (objstore.Config, error) {
	return f.storeFromSecret(ctx, objstore.Config{})
}

// storeFromSecret fills the store settings from the install's Secret
// (keys url, endpoint, region, pathStyle, ca.crt, accessKey, secretKey).
func (f *factory) storeFromSecret(ctx context.Context, cfg objstore.Config) (objstore.Config, error) {
	data, err := f.secret(ctx, StoreSecret)
	if err != nil {
		return cfg, err
	}
	get := func(k string) string { return string(data[k]) }
	cfg.URL = get("url")
	if cfg.URL == "" {
		return cfg, fmt.Errorf("Secret %s/%s has no url", f.agentNamespace, StoreSecret)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = get("endpoint")
	}
	if cfg.Region == "" {
		cfg.Region = get("region")
	}
	cfg.PathStyle = cfg.PathStyle || get("pathStyle") == "true"
	if len(cfg.CAPEM) == 0 && cfg.CAFile == "" {
		cfg.CAPEM = data["ca.crt"]
	}
	if cfg.AccessKeyFile == "" && cfg.SecretKeyFile == "" {
		cfg.AccessKey, cfg.SecretKey = get("accessKey"), get("secretKey")
	}
	return cfg, nil
}

// SnapshotKey returns the snapshot key (age identity) from --key-file,
// $DR_SNAPSHOT_KEY or the install's Secret, in that order; nil when none.
func (f *factory) SnapshotKey(ctx context.Context, keyFile string) (*age.X25519Identity, error) {
	id, err := f.snapshotKeyFrom(ctx, keyFile)
	if errors.Is(err, errSecretUnread) {
		return nil, nil
	}
	return id, err
}

// errSecretUnread marks a snapshot key Secret that could not be read.
var errSecretUnread = errors.New("the snapshot key's Secret could not be read")

// snapshotKeyFrom is SnapshotKey telling why the Secret could not be read
// (errSecretUnread) instead of returning nil.
func (f *factory) snapshotKeyFrom(ctx context.Context, keyFile string) (*age.X25519Identity, error) {
	if keyFile == "" {
		keyFile = os.Getenv(EnvSnapshotKey)
	}
	if keyFile != "" {
		return dbsnap.LoadIdentity(keyFile)
	}
	data, err := f.secret(ctx, SnapshotKeySecret)
	if err != nil {
		return nil, fmt.Errorf("%w: %w; set $%s to a file holding the key", errSecretUnread, err, EnvSnapshotKey)
	}
	key, ok := data[SnapshotKeyKey]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s has no %s", f.agentNamespace, SnapshotKeySecret, SnapshotKeyKey)
	}
	return dbsnap.ParseIdentity(bytes.NewReader(key), "from Secret "+f.agentNamespace+"/"+SnapshotKeySecret)
}

// IdentityBytes is the identity as a request carries it (nil for none).
func IdentityBytes(id *age.X25519Identity, err error) ([]byte, error) {
	if err != nil || id == nil {
		return nil, err
	}
	return []byte(id.String()), nil
}
