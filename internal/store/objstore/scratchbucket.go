package objstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Scratch buckets: a rehearsal (kubectl dr drill) restores into a bucket
// of its own beside an application's bucket (same endpoint, same
// credentials), then removes it.

// ErrNoBucketCreate means the credentials may not create a bucket there.
var ErrNoBucketCreate = errors.New("the credentials may not create buckets")

// SiblingBucket is c with its bucket replaced by name: the same endpoint
// and credentials (file://: a directory beside c's).
func SiblingBucket(c Config, name string) (Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("bucket URL %q: %w", c.URL, err)
	}
	switch u.Scheme {
	case "s3":
		c.URL = "s3://" + name
	case "file":
		c.URL = "file://" + filepath.Join(filepath.Dir(filepath.Clean(u.Path)), name)
	default:
		return c, fmt.Errorf("bucket URL %q: unknown scheme %q (want s3:// or file://)", c.URL, u.Scheme)
	}
	return c, nil
}

// MakeBucket creates the bucket c names; it exists already is an error
// (a scratch bucket is never shared). Refused credentials are
// ErrNoBucketCreate.
func MakeBucket(ctx context.Context, c Config) error {
	b, err := OpenBucket(c)
	if err != nil {
		return err
	}
	switch b := b.(type) {
	case *s3Bucket:
		err := b.s.client.MakeBucket(ctx, b.s.bucket, minio.MakeBucketOptions{Region: c.Region})
		switch minio.ToErrorResponse(err).Code {
		case "":
			return err
		case "AccessDenied":
			return fmt.Errorf("make bucket %s: %w (%v)", b, ErrNoBucketCreate, err)
		case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
			return fmt.Errorf("make bucket %s: it exists already", b)
		}
		return b.explain("make bucket", "", err)
	case *fileBucket:
		if err := os.Mkdir(b.root, 0o700); err != nil {
			return fmt.Errorf("make bucket %s: %w", b, err)
		}
		return nil
	}
	return fmt.Errorf("make bucket %s: not supported", b)
}

// RemoveBucket removes every object of the bucket c names, then the
// bucket. A bucket that is not there is no error.
func RemoveBucket(ctx context.Context, c Config) error {
	b, err := OpenBucket(c)
	if err != nil {
		return err
	}
	switch b := b.(type) {
	case *s3Bucket:
		exists, err := b.s.client.BucketExists(ctx, b.s.bucket)
		if err != nil {
			return b.explain("remove bucket", "", err)
		}
		if !exists {
			return nil
		}
		for {
			objs, more, err := b.List(ctx, "", "", 1000)
			if err != nil {
				return fmt.Errorf("remove bucket %s: %w", b, err)
			}
			for _, o := range objs {
				if err := b.Delete(ctx, o.Key); err != nil {
					return fmt.Errorf("remove bucket %s: %w", b, err)
				}
			}
			if !more {
				break
			}
		}
		err = b.s.client.RemoveBucket(ctx, b.s.bucket)
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			return b.explain("remove bucket", "", err)
		}
		return nil
	case *fileBucket:
		if err := os.RemoveAll(b.root); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove bucket %s: %w", b, err)
		}
		return nil
	}
	return fmt.Errorf("remove bucket %s: not supported", b)
}

// ListBuckets names the buckets on c's endpoint (file://: the directories
// beside c's) whose names start with prefix.
func ListBuckets(ctx context.Context, c Config, prefix string) ([]string, error) {
	b, err := OpenBucket(c)
	if err != nil {
		return nil, err
	}
	var out []string
	switch b := b.(type) {
	case *s3Bucket:
		list, err := b.s.client.ListBuckets(ctx)
		if err != nil {
			return nil, b.explain("list buckets", "", err)
		}
		for _, info := range list {
			if strings.HasPrefix(info.Name, prefix) {
				out = append(out, info.Name)
			}
		}
	case *fileBucket:
		entries, err := os.ReadDir(filepath.Dir(b.root))
		if err != nil {
			return nil, fmt.Errorf("list buckets beside %s: %w", b, err)
		}
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}
