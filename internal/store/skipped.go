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
