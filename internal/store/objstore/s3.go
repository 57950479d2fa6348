package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type s3Store struct {
	client   *minio.Client
	bucket   string
	prefix   string
	endpoint string
	// checkKey is the one key this process's Checks write: credentials
	// that may not delete leave one probe object, not one per check.
	checkKey string
}

func newS3Store(c Config, bucket, prefix string) (*s3Store, error) {
	endpoint, secure := c.Endpoint, true
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("S3 endpoint %q: %w", c.Endpoint, err)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	access, secret, err := c.credentials()
	if err != nil {
		return nil, err
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, c.SessionToken),
		Secure: secure,
		Region: c.Region,
		// Checksums go in HTTP trailers, computed as the body streams.
		TrailingHeaders: true,
	}
	if c.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	if c.CAFile != "" || len(c.CAPEM) > 0 {
		pem := c.CAPEM
		if c.CAFile != "" {
			var err error
			if pem, err = os.ReadFile(c.CAFile); err != nil {
				return nil, fmt.Errorf("read S3 CA file: %w", err)
			}
		}
		tr, err := TransportWithCA(pem)
		if err != nil {
			return nil, fmt.Errorf("S3 CA %s: %w", c.CAFile, err)
		}
		opts.Transport = tr
	}
	client, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", endpoint, err)
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return &s3Store{client: client, bucket: bucket, prefix: prefix, endpoint: scheme + "://" + endpoint, checkKey: CheckDir + hex.EncodeToString(id)}, nil
}

func (s *s3Store) String() string {
	return fmt.Sprintf("s3://%s/%s at %s", s.bucket, s.prefix, s.endpoint)
}

func (s *s3Store) Sub(prefix string) Store {
	c := *s
	c.prefix = strings.Trim(joinKey(s.prefix, prefix), "/")
	return &c
}

// explain turns minio errors into what a user can act on.
func (s *s3Store) explain(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	case "NoSuchBucket":
		return fmt.Errorf("store %s: bucket %q does not exist: create it, or fix --store", s, s.bucket)
	case "AccessDenied":
		if op == "delete" {
			return fmt.Errorf("store %s: delete %s: %w (%s): these credentials may not delete (scoped node credentials); the plugin's prune deletes with the delete-capable ones", s, key, ErrDenied, resp.Code)
		}
		return fmt.Errorf("store %s: %s %s: credentials refused (%s, %w): check %s/%s or the key files, and the policy bound to them", s, op, key, resp.Code, ErrDenied, EnvAccessKey, EnvSecretKey)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("store %s: %s %s: credentials refused (%s, %w): check %s/%s or the key files", s, op, key, resp.Code, ErrUnknownCredentials, EnvAccessKey, EnvSecretKey)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("store %s unreachable: %s %s: %w", s, op, key, err)
	}
	return fmt.Errorf("store %s: %s %s: %w", s, op, key, err)
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	return s.put(ctx, key, r, size, false)
}

// Create implements Creator with If-None-Match: *.
func (s *s3Store) Create(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	return s.put(ctx, key, r, size, true)
}

func (s *s3Store) put(ctx context.Context, key string, r io.Reader, size int64, ifAbsent bool) (int64, error) {
	if err := validKey(key); err != nil {
		return 0, err
	}
	// Every request carries the CRC64NVME of its body, which the store
	// checks before it keeps anything; the payload is not also
	// sha256-signed: that would cost a hash pass here and another in the
	// server for no extra safety. The object exists only once the upload
	// completes, and then the store answers with its full-object checksum,
	// which must be the one of the bytes read here.
	if size < 0 {
		// minio-go's streamed upload of an empty body sends a checksum the
		// store rejects; an empty object goes up as one.
		var first [1]byte
		n, err := io.ReadFull(r, first[:])
		switch {
		case err == io.EOF:
			size = 0
		case err != nil:
			return 0, fmt.Errorf("upload %s: read: %w", key, err)
		default:
			r = io.MultiReader(bytes.NewReader(first[:n]), r)
		}
	}
	ours := newChecksum()
	opts := minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		PartSize:             16 << 20,
		DisableContentSha256: true,
		Checksum:             minio.ChecksumCRC64NVME,
	}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	info, err := s.client.PutObject(ctx, s.bucket, joinKey(s.prefix, key), hashingReader{r, ours}, size, opts)
	if ifAbsent && minio.ToErrorResponse(err).Code == minio.PreconditionFailed {
		return 0, fmt.Errorf("%s: %w", key, ErrExists)
	}
	if err != nil {
		return 0, s.explain("upload", key, err)
	}
	want := encodeChecksum(ours)
	switch {
	case info.ChecksumCRC64NVME == want:
	case info.ChecksumCRC64NVME != "":
		return 0, mismatch(ctx, s, key, want, info.ChecksumCRC64NVME, "answered")
	default:
		// A store that does not report checksums: read the object back.
		got, err := readBack(ctx, s, key)
		if err != nil {
			return 0, s.explain("verify upload", key, err)
		}
		if got != want {
			return 0, mismatch(ctx, s, key, want, got, "returned bytes with")
		}
	}
	return info.Size, nil
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	// GetObject is lazy: stat first so a missing key fails here.
	if _, err := s.Stat(ctx, key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, joinKey(s.prefix, key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.explain("download", key, err)
	}
	return obj, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return ObjectInfo{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, joinKey(s.prefix, key), minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, s.explain("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: st.Size, Modified: st.LastModified, Metadata: st.UserMetadata}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	full := joinKey(s.prefix, prefix)
	if prefix == "" {
		full = joinKey(s.prefix, "")
	}
	var out []ObjectInfo
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.explain("list", prefix, obj.Err)
		}
		key := strings.TrimPrefix(obj.Key, joinKey(s.prefix, ""))
		out = append(out, ObjectInfo{Key: key, Size: obj.Size, Modified: obj.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	// Under Object Lock a delete would only hide the object behind a
	// delete marker: an object still locked is kept, and said so.
	st, err := s.client.StatObject(ctx, s.bucket, joinKey(s.prefix, key), minio.StatObjectOptions{})
	switch {
	case minio.ToErrorResponse(err).Code == "NoSuchKey":
		return nil
	case err != nil:
		return s.explain("delete", key, err)
	}
	if until, ok := retainUntil(st); ok && until.After(time.Now()) {
		return &LockedError{Key: key, Until: until}
	}
	if err := s.client.RemoveObject(ctx, s.bucket, joinKey(s.prefix, key), minio.RemoveObjectOptions{}); err != nil {
		return s.explain("delete", key, err)
	}
	return nil
}

// retainUntil is an object's Object Lock retain-until date, if it has one.
func retainUntil(st minio.ObjectInfo) (time.Time, bool) {
	v := st.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func (s *s3Store) Check(ctx context.Context) error { return check(ctx, s, s.checkKey) }

func (s *s3Store) probeKey() string { return s.checkKey }

// credentials are the access and secret key, from the files when given.
func (c Config) credentials() (access, secret string, err error) {
	access, secret = c.AccessKey, c.SecretKey
	if c.AccessKeyFile != "" {
		if access, err = readSecretFile(c.AccessKeyFile, "S3 access key file"); err != nil {
			return "", "", err
		}
	}
	if c.SecretKeyFile != "" {
		if secret, err = readSecretFile(c.SecretKeyFile, "S3 secret key file"); err != nil {
			return "", "", err
		}
	}
	if access == "" || secret == "" {
		return "", "", fmt.Errorf("no S3 credentials for %s: set %s and %s, or give key files", c.URL, EnvAccessKey, EnvSecretKey)
	}
	return access, secret, nil
}

// Credentials are the access and secret key c gives, read from the key
// files when it names them.
func (c Config) Credentials() (access, secret string, err error) { return c.credentials() }

// TransportWithCA is an HTTP transport that trusts the PEM certificates
// given (an S3 endpoint's own CA), TLS 1.2 or later.
func TransportWithCA(pem []byte) (*http.Transport, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}
