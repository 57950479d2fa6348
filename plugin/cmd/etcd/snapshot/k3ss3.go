package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// K3sS3Secret is the Secret in kube-system that k3s reads its snapshots'
// S3 settings from (--etcd-s3-config-secret's default name); its keys are
// k3s's flag names.
const K3sS3Secret = "k3s-etcd-snapshot-s3-config"

// k3sS3 is where k3s uploads its own snapshots (--etcd-s3-*): from the
// flags, else from k3s's Secret in the cluster.
type k3sS3 struct {
	Bucket, Folder, Endpoint, Region string
	AccessKeyFile, SecretKeyFile     string
	CAFile                           string
	Insecure                         bool
}

func (k *k3sS3) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.Bucket, "k3s-s3-bucket", "", "k3s's --etcd-s3-bucket, to list or import the snapshots k3s uploaded (default: k3s's Secret kube-system/"+K3sS3Secret+")")
	fs.StringVar(&k.Folder, "k3s-s3-folder", "", "k3s's --etcd-s3-folder")
	fs.StringVar(&k.Endpoint, "k3s-s3-endpoint", "", "k3s's --etcd-s3-endpoint (default s3.amazonaws.com)")
	fs.StringVar(&k.Region, "k3s-s3-region", "", "k3s's --etcd-s3-region")
	fs.StringVar(&k.AccessKeyFile, "k3s-s3-access-key-file", "", "file holding k3s's --etcd-s3-access-key (default $"+objstore.EnvAccessKey+")")
	fs.StringVar(&k.SecretKeyFile, "k3s-s3-secret-key-file", "", "file holding k3s's --etcd-s3-secret-key (default $"+objstore.EnvSecretKey+")")
	fs.StringVar(&k.CAFile, "k3s-s3-endpoint-ca", "", "k3s's --etcd-s3-endpoint-ca: a PEM bundle to trust")
	fs.BoolVar(&k.Insecure, "k3s-s3-insecure", false, "k3s's --etcd-s3-insecure: plain HTTP")
}

// open returns k3s's S3 folder as a store, or nil when k3s's S3 is not
// configured here (no --k3s-s3-bucket and no readable Secret).
func (k *k3sS3) open(ctx context.Context, f cmdutil.Factory) (objstore.Store, error) {
	c := objstore.Config{}
	secure := !k.Insecure
	if k.Bucket != "" {
		c.URL = "s3://" + path.Join(k.Bucket, k.Folder)
		c.Endpoint, c.Region, c.CAFile = k.Endpoint, k.Region, k.CAFile
		c.AccessKeyFile, c.SecretKeyFile = k.AccessKeyFile, k.SecretKeyFile
		if c.AccessKeyFile == "" && c.SecretKeyFile == "" {
			c.AccessKey, c.SecretKey = os.Getenv(objstore.EnvAccessKey), os.Getenv(objstore.EnvSecretKey)
		}
	} else {
		cs, err := f.Clientset()
		if err != nil {
			return nil, nil
		}
		sec, err := cs.CoreV1().Secrets("kube-system").Get(ctx, K3sS3Secret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read k3s's S3 settings (Secret kube-system/%s): %w", K3sS3Secret, err)
		}
		get := func(key string) string { return strings.TrimSpace(string(sec.Data[key])) }
		if get("etcd-s3-bucket") == "" {
			return nil, fmt.Errorf("Secret kube-system/%s names no etcd-s3-bucket", K3sS3Secret)
		}
		c.URL = "s3://" + path.Join(get("etcd-s3-bucket"), get("etcd-s3-folder"))
		c.Endpoint, c.Region = get("etcd-s3-endpoint"), get("etcd-s3-region")
		c.AccessKey, c.SecretKey = get("etcd-s3-access-key"), get("etcd-s3-secret-key")
		if ca := get("etcd-s3-endpoint-ca"); ca != "" {
			c.CAPEM = []byte(ca)
		}
		if v, err := strconv.ParseBool(get("etcd-s3-insecure")); err == nil && v {
			secure = false
		}
	}
	if c.Endpoint == "" {
		c.Endpoint = "s3.amazonaws.com"
	}
	if !strings.Contains(c.Endpoint, "://") {
		// k3s takes a bare host; --etcd-s3-insecure makes it plain HTTP.
		scheme := "https://"
		if !secure {
			scheme = "http://"
		}
		c.Endpoint = scheme + c.Endpoint
	}
	st, err := objstore.Open(c)
	if err != nil {
		return nil, fmt.Errorf("k3s's S3 settings: %w", err)
	}
	return st, nil
}

// k3sS3Metadata are the user metadata k3s puts on each snapshot it uploads.
const (
	k3sMetaNode = "K3s-Node-Name"
)

// listK3sS3 lists the snapshots k3s uploaded to st: every object directly
// in the folder (k3s keeps each snapshot's extra metadata under
// .metadata/, which is not a snapshot), its node from k3s's metadata.
func listK3sS3(ctx context.Context, st objstore.Store) ([]*dbsnap.Snapshot, error) {
	objs, err := st.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list k3s's S3 snapshots in %s: %w", st, err)
	}
	var out []*dbsnap.Snapshot
	for _, o := range objs {
		if strings.Contains(o.Key, "/") {
			continue
		}
		info, err := st.Stat(ctx, o.Key)
		if err != nil {
			return nil, fmt.Errorf("k3s's S3 snapshot %s in %s: %w", o.Key, st, err)
		}
		node := info.Metadata[k3sMetaNode]
		created := o.Modified
		if n, t, ok := parseK3sName(o.Key); ok {
			if node == "" {
				node = n
			}
			created = t
		}
		out = append(out, &dbsnap.Snapshot{
			Name: o.Key, Node: node, Created: created.UTC(), Size: o.Size,
			StoreKey: o.Key, Origin: dbsnap.OriginK3sS3,
			Imported: &dbsnap.Imported{OriginalName: o.Key},
		})
	}
	return out, nil
}

// parseK3sName reads k3s's <name>-<node>-<unix>[.zip]: the node is what
// lies between the name's first part and the time, which a name with
// dashes makes ambiguous, so only the time is sure.
func parseK3sName(name string) (node string, created time.Time, ok bool) {
	base := strings.TrimSuffix(name, ".zip")
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return "", time.Time{}, false
	}
	unix, err := strconv.ParseInt(base[i+1:], 10, 64)
	if err != nil || unix < 1_000_000_000 {
		return "", time.Time{}, false
	}
	// k3s's own names: its schedule's etcd-snapshot-, its CLI's on-demand-.
	for _, prefix := range []string{"etcd-snapshot-", "on-demand-"} {
		if rest := base[:i]; strings.HasPrefix(rest, prefix) {
			node = strings.TrimPrefix(rest, prefix)
		}
	}
	return node, time.Unix(unix, 0), true
}

// fetchK3sS3 downloads k3s's snapshot name into dir, whole (its size as
// listed), and returns the file's path.
func fetchK3sS3(ctx context.Context, st objstore.Store, snap *dbsnap.Snapshot, dir string) (string, error) {
	rc, err := st.Get(ctx, snap.StoreKey)
	if err != nil {
		return "", fmt.Errorf("download k3s's snapshot %s from %s: %w", snap.Name, st, err)
	}
	defer rc.Close()
	p := path.Join(dir, snap.Name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, rc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download k3s's snapshot %s: %w", snap.Name, err)
	}
	if n != snap.Size {
		return "", fmt.Errorf("download k3s's snapshot %s: %d bytes, the listing said %d", snap.Name, n, snap.Size)
	}
	if err := durable.SyncDir(dir); err != nil {
		return "", err
	}
	return p, nil
}
