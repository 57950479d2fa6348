package objstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
)

// BucketObject is one object of an application's bucket as the bucket
// describes it.
type BucketObject struct {
	Key      string
	Size     int64
	ETag     string
	Modified time.Time
}

// Bucket is an application's bucket: what a bucket source backs up and a
// bucket restore writes into. Its keys are the application's, whole (no
// prefix of ours), and may hold anything S3 allows: spaces, unicode, "..",
// up to 1024 bytes.
type Bucket interface {
	// List returns up to max objects under prefix whose keys sort after
	// after, in key order, and whether more follow.
	List(ctx context.Context, prefix, after string, max int) ([]BucketObject, bool, error)
	// Get opens an object and describes the object it opened (which may
	// be newer than what a listing said). A missing key is ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, BucketObject, error)
	// Put writes r (size bytes) under key; it succeeds only when the
	// bucket holds the bytes read (CRC64NVME, as Store.Put).
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Delete removes key; a missing key is no error.
	Delete(ctx context.Context, key string) error
	// String names the bucket for messages (no secrets).
	String() string
}

// OpenBucket connects to an application's bucket: c.URL is s3://BUCKET (no
// prefix: sources filter by prefix themselves) or file:///PATH, a
// directory whose files are the objects (for tests and local copies; it
// cannot hold keys with "." or ".." segments).
func OpenBucket(c Config) (Bucket, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("bucket URL %q: %w", c.URL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || u.Path == "/" || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("bucket URL %q: want file:///PATH", c.URL)
		}
		return &fileBucket{root: filepath.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("bucket URL %q: no bucket (want s3://BUCKET)", c.URL)
		}
		if p := strings.Trim(u.Path, "/"); p != "" {
			return nil, fmt.Errorf("bucket URL %q: give the bucket alone (s3://%s) and the prefix %q as the source's prefix", c.URL, u.Host, p)
		}
		s, err := newS3Store(c, u.Host, "")
		if err != nil {
			return nil, err
		}
		return &s3Bucket{s}, nil
	}
	return nil, fmt.Errorf("bucket URL %q: unknown scheme %q (want s3:// or file://)", c.URL, u.Scheme)
}

type s3Bucket struct{ s *s3Store }

func (b *s3Bucket) String() string { return fmt.Sprintf("s3://%s at %s", b.s.bucket, b.s.endpoint) }

func (b *s3Bucket) explain(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	case "NoSuchBucket":
		return fmt.Errorf("bucket %s does not exist: create it, or fix the bucket's name", b)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("bucket %s: %s %q: credentials refused (%s): check the bucket's access and secret key", b, op, key, resp.Code)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("bucket %s unreachable: %s %q: %w", b, op, key, err)
	}
	return fmt.Errorf("bucket %s: %s %q: %w", b, op, key, err)
}

func (b *s3Bucket) List(ctx context.Context, prefix, after string, max int) ([]BucketObject, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []BucketObject
	// One more than asked tells whether more follow.
	for obj := range b.s.client.ListObjects(ctx, b.s.bucket, minio.ListObjectsOptions{
		Prefix: prefix, StartAfter: after, Recursive: true, MaxKeys: min(max+1, 1000),
	}) {
		if obj.Err != nil {
			return nil, false, b.explain("list", prefix, obj.Err)
		}
		if len(out) == max {
			return out, true, nil
		}
		out = append(out, BucketObject{Key: obj.Key, Size: obj.Size, ETag: strings.Trim(obj.ETag, `"`), Modified: obj.LastModified})
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

func (b *s3Bucket) Get(ctx context.Context, key string) (io.ReadCloser, BucketObject, error) {
	obj, err := b.s.client.GetObject(ctx, b.s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, BucketObject{}, b.explain("download", key, err)
	}
	// The first response tells what object this is (GetObject is lazy).
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, BucketObject{}, b.explain("download", key, err)
	}
	return obj, BucketObject{Key: key, Size: st.Size, ETag: strings.Trim(st.ETag, `"`), Modified: st.LastModified}, nil
}

func (b *s3Bucket) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	ours := newChecksum()
	info, err := b.s.client.PutObject(ctx, b.s.bucket, key, hashingReader{r, ours}, size, minio.PutObjectOptions{
		PartSize:             16 << 20,
		DisableContentSha256: true,
		Checksum:             minio.ChecksumCRC64NVME,
	})
	if err != nil {
		return b.explain("upload", key, err)
	}
	want := encodeChecksum(ours)
	if info.ChecksumCRC64NVME != "" && info.ChecksumCRC64NVME != want {
		return fmt.Errorf("bucket %s: %q: %w: sent crc64nvme %s, the bucket answered %s: write it again", b, key, ErrChecksumMismatch, want, info.ChecksumCRC64NVME)
	}
	if info.ChecksumCRC64NVME == "" {
		rc, _, err := b.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("verify upload: %w", err)
		}
		defer rc.Close()
		h := newChecksum()
		if _, err := io.Copy(h, rc); err != nil {
			return b.explain("verify upload", key, err)
		}
		if got := encodeChecksum(h); got != want {
			return fmt.Errorf("bucket %s: %q: %w: sent crc64nvme %s, read back %s: write it again", b, key, ErrChecksumMismatch, want, got)
		}
	}
	return nil
}

func (b *s3Bucket) Delete(ctx context.Context, key string) error {
	if err := b.s.client.RemoveObject(ctx, b.s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return b.explain("delete", key, err)
	}
	return nil
}

// fileBucket is a directory as a bucket. Its ETag is the md5 of the
// content, as S3's for objects uploaded whole.
type fileBucket struct{ root string }

func (b *fileBucket) String() string { return "file://" + b.root }

func (b *fileBucket) path(key string) (string, error) {
	if err := validKey(key); err != nil || strings.Contains(key, "//") || strings.HasSuffix(key, "/") {
		return "", fmt.Errorf("bucket %s cannot hold the key %q (a directory keeps no empty, \".\" or \"..\" path segments): restore into an S3 bucket", b, key)
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

func (b *fileBucket) List(ctx context.Context, prefix, after string, max int) ([]BucketObject, bool, error) {
	var all []BucketObject
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() || durable.IsTemp(p) {
			return err
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || key <= after {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		all = append(all, BucketObject{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("bucket %s: list %q: %w", b, prefix, err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Key < all[j].Key })
	more := len(all) > max
	if more {
		all = all[:max]
	}
	for i := range all {
		sum, err := fileMD5(filepath.Join(b.root, filepath.FromSlash(all[i].Key)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("bucket %s: %w", b, err)
		}
		all[i].ETag = sum
	}
	return all, more, ctx.Err()
}

func fileMD5(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (b *fileBucket) Get(_ context.Context, key string) (io.ReadCloser, BucketObject, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, BucketObject{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, BucketObject{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, BucketObject{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, BucketObject{}, err
	}
	sum, err := fileMD5(p)
	if err != nil {
		f.Close()
		return nil, BucketObject{}, err
	}
	return f, BucketObject{Key: key, Size: st.Size(), ETag: sum, Modified: st.ModTime()}, nil
}

func (b *fileBucket) Put(ctx context.Context, key string, r io.Reader, _ int64) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := durable.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("bucket %s: %w", b, err)
	}
	f, err := durable.Create(p, 0o644)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", b, err)
	}
	defer f.Abort()
	if _, err := io.Copy(f, readerWithContext(ctx, r)); err != nil {
		return fmt.Errorf("bucket %s: write %q: %w", b, key, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("bucket %s: write %q: %w", b, key, err)
	}
	return nil
}

func (b *fileBucket) Delete(_ context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bucket %s: delete %q: %w", b, key, err)
	}
	return nil
}
