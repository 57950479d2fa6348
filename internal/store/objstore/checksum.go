package objstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/minio/crc64nvme"
)

// ErrChecksumMismatch means the store holds other bytes than the ones Put
// read: the object was corrupted on the way or at rest. Put deletes such an
// object before it returns, so nothing lists it as good.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// Every object is checksummed with CRC64NVME over its whole content: the
// full-object checksum S3 stores and returns for multipart uploads too (AWS
// S3's default since 2025, MinIO's), cheap enough (several GB/s) to compute
// while sending.
func newChecksum() hash.Hash64 { return crc64nvme.New() }

func encodeChecksum(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }

// hashingReader hashes what it reads, so that the checksum is of the bytes
// Put actually sent, not of what the caller meant to send.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (r hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// readBack is the checksum of the object as the store returns it now: for
// stores that do not report one on upload.
func readBack(ctx context.Context, s Store, key string) (string, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := newChecksum()
	if _, err := io.Copy(h, readerWithContext(ctx, rc)); err != nil {
		return "", fmt.Errorf("read back %s: %w", key, err)
	}
	return encodeChecksum(h), nil
}

// mismatch is the error for an object whose checksum is not ours, after
// deleting it (a failed delete is named: it must not be taken for good).
func mismatch(ctx context.Context, s Store, key, ours, theirs, how string) error {
	err := fmt.Errorf("store %s: %s: %w: sent crc64nvme %s, the store %s %s; the object was not kept, try again (check the network and the store's disks if it repeats)",
		s, key, ErrChecksumMismatch, ours, how, theirs)
	if derr := s.Delete(context.WithoutCancel(ctx), key); derr != nil {
		return fmt.Errorf("%w; deleting the bad object failed too (delete %s by hand): %v", err, key, derr)
	}
	return err
}
