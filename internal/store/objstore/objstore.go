package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrNotFound means the key does not exist in the store.
var ErrNotFound = errors.New("not found in the store")

// ErrExists means Create found an object under the key already.
var ErrExists = errors.New("already in the store")

// Creator is a store that writes an object only where there is none, in
// one step the store itself decides: S3's conditional write (If-None-Match:
// *), a hard link on a file system. Of two writers one wins, the other gets
// ErrExists.
type Creator interface {
	Create(ctx context.Context, key string, r io.Reader, size int64) (int64, error)
}

// Create stores r under key unless an object is there already
// (ErrExists), with the store's conditional write. A store without one (a
// wrapper that hides it) gets a Stat, then a Put: a writer in between
// loses silently, so records written once are read back by their callers.
// S3-compatible stores that ignore If-None-Match overwrite like Put.
func Create(ctx context.Context, s Store, key string, r io.Reader, size int64) (int64, error) {
	if c, ok := s.(Creator); ok {
		return c.Create(ctx, key, r, size)
	}
	if _, err := s.Stat(ctx, key); err == nil {
		return 0, fmt.Errorf("%s: %w", key, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	return s.Put(ctx, key, r, size)
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
	// Metadata is the object's user metadata (S3's x-amz-meta-*, names
	// canonical: "K3s-Node-Name"), filled by Stat on S3 stores only.
	Metadata map[string]string
}

// Store holds objects under keys ("etcd/server-1/snap.db.zst"). Keys are
// relative to the store's prefix.
type Store interface {
	// Put stores r under key; size may be -1 when unknown. It returns the
	// bytes the store holds once the object is complete.
	Put(ctx context.Context, key string, r io.Reader, size int64) (int64, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	// Sub is the same store under prefix/ (e.g. the cluster id).
	Sub(prefix string) Store
	// Check writes, reads back and deletes a small object: the store is
	// reachable and writable with these credentials. A refused delete
	// (scoped credentials) passes; Probe tells it apart.
	Check(ctx context.Context) error
	// String names the store for messages (URL and endpoint, no secrets).
	String() string
}

// Config says where the store is and how to reach it.
type Config struct {
	// URL is s3://bucket[/prefix] or file:///path.
	URL string `json:"url"`
	// Endpoint of an S3-compatible service: host:port or http(s)://host:port.
	// Default: AWS S3 (s3.amazonaws.com).
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	// PathStyle forces path-style bucket addressing (MinIO behind a plain
	// host name); default is automatic.
	PathStyle bool `json:"pathStyle,omitempty"`
	// CAFile is a PEM bundle to trust for an HTTPS endpoint; CAPEM is the
	// same given inline (from a Secret).
	CAFile string `json:"caFile,omitempty"`
	CAPEM  []byte `json:"-"`
	// Credentials, or files holding them (mounted Secrets).
	AccessKey     string `json:"-"`
	SecretKey     string `json:"-"`
	AccessKeyFile string `json:"accessKeyFile,omitempty"`
	SecretKeyFile string `json:"secretKeyFile,omitempty"`
	// SessionToken goes with temporary credentials (STS), given inline.
	SessionToken string `json:"-"`
	// Scoped says the credentials may put and get but not delete (the
	// node credentials install makes): the agent leaves store deletions to
	// the plugin, which holds the delete-capable ones.
	Scoped bool `json:"scoped,omitempty"`
}

// Environment variables read where the configuration leaves a field empty.
const (
	EnvStore     = "DR_STORE"
	EnvEndpoint  = "DR_S3_ENDPOINT"
	EnvRegion    = "AWS_REGION"
	EnvPathStyle = "DR_S3_PATH_STYLE"
	EnvCA        = "DR_S3_CA"
	EnvAccessKey = "AWS_ACCESS_KEY_ID"
	EnvSecretKey = "AWS_SECRET_ACCESS_KEY"
)

// FromEnv fills empty fields from the environment.
func (c Config) FromEnv() Config {
	set := func(v *string, env string) {
		if *v == "" {
			*v = os.Getenv(env)
		}
	}
	set(&c.URL, EnvStore)
	set(&c.Endpoint, EnvEndpoint)
	set(&c.Region, EnvRegion)
	set(&c.CAFile, EnvCA)
	if c.AccessKeyFile == "" {
		set(&c.AccessKey, EnvAccessKey)
	}
	if c.SecretKeyFile == "" {
		set(&c.SecretKey, EnvSecretKey)
	}
	if !c.PathStyle {
		c.PathStyle = os.Getenv(EnvPathStyle) == "true" || os.Getenv(EnvPathStyle) == "1"
	}
	return c
}

// Open connects to the store the URL names. It does no I/O for s3://; use
// Check to find out whether the store answers.
func Open(c Config) (Store, error) {
	if c.URL == "" {
		return nil, fmt.Errorf("no store configured: give --store s3://BUCKET/PREFIX or file:///PATH (or set %s)", EnvStore)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("store URL %q: %w", c.URL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("store URL %q: a file store needs an absolute path (file:///PATH)", c.URL)
		}
		if u.Path == "" || u.Path == "/" {
			return nil, fmt.Errorf("store URL %q: no directory", c.URL)
		}
		return newFileStore(u.Path)
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("store URL %q: no bucket (want s3://BUCKET/PREFIX)", c.URL)
		}
		return newS3Store(c, u.Host, strings.Trim(u.Path, "/"))
	}
	return nil, fmt.Errorf("store URL %q: unknown scheme %q (want s3:// or file://)", c.URL, u.Scheme)
}

func joinKey(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix + "/"
	}
	return prefix + "/" + key
}

// validKey refuses keys that could escape the store's prefix.
func validKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") {
		return fmt.Errorf("invalid store key %q", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == ".." || part == "." {
			return fmt.Errorf("invalid store key %q", key)
		}
	}
	return nil
}

func readSecretFile(path, what string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return strings.TrimSpace(string(data)), nil
}
