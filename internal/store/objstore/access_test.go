package objstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// noDelete is a store whose credentials may not delete, as S3 answers
// put/get-only ones.
type noDelete struct {
	Store
	err error
}

func (s noDelete) Delete(_ context.Context, key string) error {
	return fmt.Errorf("store: delete %s: %w", key, s.err)
}

// A store check with credentials that may not delete passes and says so;
// the probe object stays. A failing delete of another kind fails it.
func TestProbeScopedCredentials(t *testing.T) {
	ctx := context.Background()
	fs, err := Open(Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := Probe(ctx, fs)
	if err != nil || !acc.CanDelete {
		t.Fatalf("probe with full access: %+v, %v", acc, err)
	}
	for _, refusal := range []error{ErrDenied, &LockedError{Key: "k", Until: time.Now().Add(time.Hour)}} {
		s := noDelete{fs, refusal}
		acc, err := Probe(ctx, s)
		if err != nil || acc.CanDelete {
			t.Errorf("probe, delete refused with %v: %+v, %v; want passed, cannot delete", refusal, acc, err)
		}
		if err := check(ctx, s, CheckDir+"fixed"); err != nil {
			t.Errorf("check, delete refused with %v: %v", refusal, err)
		}
	}
	left, err := fs.List(ctx, CheckDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 {
		t.Errorf("probe objects left: %d; want 3 (two random, one fixed key written twice)", len(left))
	}
	if _, err := Probe(ctx, noDelete{fs, errors.New("connection reset")}); err == nil {
		t.Error("probe with a failing delete passed")
	}
}

func TestRefused(t *testing.T) {
	until := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	locked := fmt.Errorf("delete: %w", &LockedError{Key: "etcd/a.json", Until: until})
	if !Refused(locked) || !errors.Is(locked, ErrLocked) {
		t.Errorf("%v: not refused/locked", locked)
	}
	if want := "etcd/a.json: kept by the store's object lock until 2027-01-02T03:04:05Z"; errors.Unwrap(locked).Error() != want {
		t.Errorf("message %q; want %q", errors.Unwrap(locked).Error(), want)
	}
	if !Refused(fmt.Errorf("x: %w", ErrDenied)) || Refused(ErrNotFound) || Refused(nil) {
		t.Error("Refused misjudges ErrDenied, ErrNotFound or nil")
	}
}
