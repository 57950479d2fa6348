package store

import (
	"errors"
	"fmt"
)

// ErrBadRecord means a record in the store cannot be used: it does not
// parse, it is not what its key says (foreign), or it is of a newer format.
// Listings skip such records and name them (Skipped); they fail only when
// the store itself does.
var ErrBadRecord = errors.New("unusable record")

// BadRecord wraps why the record at key cannot be used.
func BadRecord(key string, why error) error {
	return fmt.Errorf("%w %s: %w", ErrBadRecord, key, why)
}

// Skipped is a record a listing went on without.
type Skipped struct {
	Key    string
	Reason error
}

func (s Skipped) String() string { return fmt.Sprintf("skipped %s: %v", s.Key, s.Reason) }

// ReadEach reads the record at each key with read, in order: a record
// that cannot be used is skipped and named, one that gone says vanished
// since it was listed is left out, and any other error (the store failing)
// ends the listing.
func ReadEach[T any](keys []string, read func(key string) (T, error), gone func(error) bool) ([]T, []Skipped, error) {
	var (
		out     []T
		skipped []Skipped
	)
	for _, key := range keys {
		rec, err := read(key)
		switch {
		case errors.Is(err, ErrBadRecord):
			skipped = append(skipped, Skipped{Key: key, Reason: err})
			continue
		case err != nil && gone(err):
			continue
		case err != nil:
			return nil, nil, err
		}
		out = append(out, rec)
	}
	return out, skipped, nil
}
