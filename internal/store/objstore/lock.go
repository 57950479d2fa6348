package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Object Lock retention modes (S3's): governance can be lifted by whoever
// holds s3:BypassGovernanceRetention; compliance by nobody until the date.
const (
	LockGovernance = "governance"
	LockCompliance = "compliance"
)

// ErrNoObjectLock means the bucket was created without Object Lock, which
// S3 cannot add later (AWS can, with versioning on; MinIO cannot).
var ErrNoObjectLock = errors.New("the bucket has no object lock")

// LockSettings is the default retention install sets on the store's
// bucket: every new object is kept Days days from its upload.
type LockSettings struct {
	Mode string
	Days int
	// Create makes the bucket with Object Lock (and versioning) when it
	// does not exist.
	Create bool
}

// LockResult says what SetObjectLock did.
type LockResult struct {
	Created bool
	// Before is the default retention the bucket had ("" for none), as
	// "GOVERNANCE 7 DAYS".
	Before string
}

// SetObjectLock sets the default Object Lock retention of the bucket the
// s3:// store c names, creating the bucket with lock enabled when it does
// not exist and s.Create says so. A bucket without lock gets
// ErrNoObjectLock. The bucket's lifecycle is left alone: noncurrent
// versions (what deletes and overwrites leave behind) stay until a rule
// the operator sets expires them (docs/security.md).
func SetObjectLock(ctx context.Context, c Config, s LockSettings) (LockResult, error) {
	var res LockResult
	var mode minio.RetentionMode
	switch s.Mode {
	case LockGovernance, "":
		mode = minio.Governance
	case LockCompliance:
		mode = minio.Compliance
	default:
		return res, fmt.Errorf("object lock mode %q: want %s or %s", s.Mode, LockGovernance, LockCompliance)
	}
	if s.Days < 1 {
		return res, fmt.Errorf("object lock days %d: want 1 or more", s.Days)
	}
	st, err := openS3(c)
	if err != nil {
		return res, err
	}
	exists, err := st.client.BucketExists(ctx, st.bucket)
	if err != nil {
		return res, st.explain("look up bucket", st.bucket, err)
	}
	if !exists {
		if !s.Create {
			return res, fmt.Errorf("store %s: bucket %q does not exist: create it with object lock, or let install create it", st, st.bucket)
		}
		if err := st.client.MakeBucket(ctx, st.bucket, minio.MakeBucketOptions{Region: c.Region, ObjectLocking: true}); err != nil {
			return res, st.explain("create bucket", st.bucket, err)
		}
		res.Created = true
	}
	enabled, oldMode, oldValidity, oldUnit, err := st.client.GetObjectLockConfig(ctx, st.bucket)
	if err != nil {
		if resp := minio.ToErrorResponse(err); strings.HasPrefix(resp.Code, "ObjectLockConfigurationNotFound") || strings.Contains(resp.Message, "Object Lock configuration does not exist") {
			return res, fmt.Errorf("store %s: %w: S3 enables it only when a bucket is created; create a new bucket with object lock (install does with --create-bucket) and move the store there", st, ErrNoObjectLock)
		}
		return res, st.explain("read object lock of", st.bucket, err)
	}
	if enabled != "Enabled" {
		return res, fmt.Errorf("store %s: %w (%q)", st, ErrNoObjectLock, enabled)
	}
	if oldMode != nil && oldValidity != nil && oldUnit != nil {
		res.Before = fmt.Sprintf("%s %d %s", *oldMode, *oldValidity, *oldUnit)
	}
	days, unit := uint(s.Days), minio.Days
	if err := st.client.SetObjectLockConfig(ctx, st.bucket, &mode, &days, &unit); err != nil {
		return res, st.explain("set object lock of", st.bucket, err)
	}
	return res, nil
}

// ObjectLockOf reads the bucket's default retention: "" when it has none.
func ObjectLockOf(ctx context.Context, c Config) (string, error) {
	st, err := openS3(c)
	if err != nil {
		return "", err
	}
	enabled, mode, validity, unit, err := st.client.GetObjectLockConfig(ctx, st.bucket)
	if err != nil || enabled != "Enabled" || mode == nil || validity == nil || unit == nil {
		return "", nil
	}
	return fmt.Sprintf("%s %d %s", strings.ToLower(string(*mode)), *validity, strings.ToLower(string(*unit))), nil
}

// openS3 opens the s3:// store c names at its bucket (prefix kept).
func openS3(c Config) (*s3Store, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("store URL %q: object lock needs an s3:// store", c.URL)
	}
	return newS3Store(c, u.Host, strings.Trim(u.Path, "/"))
}
