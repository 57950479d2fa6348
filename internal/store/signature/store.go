package signature

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Put stores data under key with its signature beside it: KEY.sig first,
// then KEY, so that a record is never there without the signature that
// vouches for it (a signature without its record is an unfinished write).
// A nil signer stores data unsigned (an agent not yet enrolled).
func Put(ctx context.Context, s objstore.Store, sg *Signer, key string, data []byte) error {
	if sg != nil {
		e, err := sg.Sign(key, data, time.Now())
		if err != nil {
			return err
		}
		raw, err := e.Marshal()
		if err != nil {
			return err
		}
		if _, err := s.Put(ctx, key+Suffix, bytes.NewReader(raw), int64(len(raw))); err != nil {
			return fmt.Errorf("write the signature of %s: %w", key, err)
		}
	}
	_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
	return err
}

// Delete removes key's signature, after the caller removed key: a
// signature left behind vouches for nothing.
func Delete(ctx context.Context, s objstore.Store, key string) error {
	if err := s.Delete(ctx, key+Suffix); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return err
	}
	return nil
}

// Load reads the envelope stored beside key: ErrUnsigned when there is
// none.
func Load(ctx context.Context, s objstore.Store, key string) (Envelope, error) {
	rc, err := s.Get(ctx, key+Suffix)
	if errors.Is(err, objstore.ErrNotFound) {
		return Envelope{}, fmt.Errorf("%s: %w", key, ErrUnsigned)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("read the signature of %s: %w", key, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, MaxEnvelope+1))
	if err != nil {
		return Envelope{}, fmt.Errorf("read the signature of %s: %w", key, err)
	}
	return Parse(raw)
}

// Policy is what a reader accepts: records signed by someone its trust
// allows, and, only when the user said so, records with no signature (from
// before records were signed).
type Policy struct {
	// Trust is nil where no CA is known (then nothing can be verified).
	Trust *Trust
	// AllowUnsigned accepts a record without a signature (never one whose
	// signature does not hold).
	AllowUnsigned bool
}

// UnsignedError is a record that carries no signature, or that cannot be
// checked because the reader knows no CA.
type UnsignedError struct {
	What, Key string
	// NoTrust: the reader has no CA to check with.
	NoTrust bool
}

func (e *UnsignedError) Error() string {
	if e.NoTrust {
		return fmt.Sprintf("%s %s cannot be checked: no CA to verify its signature with is known here (an agent's tls.ca; another cluster's records); refused. Run again with --allow-unsigned to accept it unchecked", e.What, e.Key)
	}
	return fmt.Sprintf("%s %s is not signed: it was written before kubectl dr signed its records, by an agent not yet enrolled, or planted by someone without a node's key; refused. If you know it is yours, run again with --allow-unsigned", e.What, e.Key)
}

func (e *UnsignedError) Unwrap() error { return ErrUnsigned }

// Read gets key's bytes and checks them against its signature under p:
// the bytes returned are the ones verified (decode these, not an earlier
// read). what names the record in messages ("snapshot record"). Who is
// zero for an unsigned record p accepted.
func (p Policy) Read(ctx context.Context, s objstore.Store, what, key string, max int64, owner Owner) ([]byte, Who, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, Who{}, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	rc.Close()
	if err != nil {
		return nil, Who{}, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > max {
		return nil, Who{}, fmt.Errorf("%s %s is larger than %d bytes", what, key, max)
	}
	who, err := p.Check(ctx, s, what, key, data, owner)
	return data, who, err
}

// Check checks data, read from key, against the signature beside it.
func (p Policy) Check(ctx context.Context, s objstore.Store, what, key string, data []byte, owner Owner) (Who, error) {
	e, err := Load(ctx, s, key)
	switch {
	case errors.Is(err, ErrUnsigned):
		if p.AllowUnsigned {
			return Who{}, nil
		}
		return Who{}, &UnsignedError{What: what, Key: key}
	case err != nil:
		return Who{}, fmt.Errorf("%s %s: %w", what, key, err)
	}
	if p.Trust == nil {
		if p.AllowUnsigned {
			return Who{}, nil
		}
		return Who{}, &UnsignedError{What: what, Key: key, NoTrust: true}
	}
	who, err := p.Trust.Verify(e, key, data, owner)
	if err != nil {
		return who, fmt.Errorf("%s refused: %w", what, err)
	}
	return who, nil
}
