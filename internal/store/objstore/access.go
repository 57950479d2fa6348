package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrDenied means the store refused the request for these credentials
// (S3's AccessDenied, HTTP 403). Nodes holding put/get-only credentials
// get it on every delete: the deletion is left to the plugin's
// delete-capable credentials.
var ErrDenied = errors.New("denied by the store")

// ErrUnknownCredentials means the store does not take the credentials at
// all: an access key it does not know, or the wrong secret key.
var ErrUnknownCredentials = errors.New("unknown to the store")

// ErrLocked means the object is under Object Lock retention: the store
// keeps it until its retain-until date, and so does retention.
var ErrLocked = errors.New("kept by the store's object lock")

// LockedError names the date an object's lock ends.
type LockedError struct {
	Key   string
	Until time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s: %v until %s", e.Key, ErrLocked, e.Until.UTC().Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Refused says whether a delete was refused for a reason that is the
// store's policy, not a fault: the credentials may not delete (ErrDenied)
// or the object is locked (ErrLocked). Such an object is left where it is.
func Refused(err error) bool { return errors.Is(err, ErrDenied) || errors.Is(err, ErrLocked) }

// Access is what a Probe found the credentials may do.
type Access struct {
	// CanDelete is false for scoped credentials (put and get only): the
	// probe object stays under CheckDir until a delete-capable prune.
	CanDelete bool
}

// CheckDir is where Check writes its probe objects.
const CheckDir = ".dr-check/"

// Probe writes a small object, reads it back and deletes it. A refused
// delete is not a failure: it is what scoped credentials are for, and
// Access says so.
func Probe(ctx context.Context, s Store) (Access, error) {
	key := ""
	if k, ok := s.(interface{ probeKey() string }); ok {
		key = k.probeKey()
	}
	return probe(ctx, s, key)
}

// probe writes under key, or a random one when key is "".
func probe(ctx context.Context, s Store, key string) (Access, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return Access{}, err
	}
	if key == "" {
		key = CheckDir + hex.EncodeToString(b)
	}
	if _, err := s.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return Access{}, fmt.Errorf("store %s is not writable: %w", s, err)
	}
	got, err := readAll(ctx, s, key)
	if err != nil {
		s.Delete(context.WithoutCancel(ctx), key)
		return Access{}, fmt.Errorf("store %s: read back: %w", s, err)
	}
	if !bytes.Equal(got, b) {
		s.Delete(context.WithoutCancel(ctx), key)
		return Access{}, fmt.Errorf("store %s: read back different bytes", s)
	}
	err = s.Delete(context.WithoutCancel(ctx), key)
	switch {
	case err == nil:
		return Access{CanDelete: true}, nil
	case Refused(err):
		return Access{CanDelete: false}, nil
	}
	return Access{}, fmt.Errorf("store %s: delete the check object: %w", s, err)
}

func readAll(ctx context.Context, s Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
