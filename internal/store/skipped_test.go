package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func put(t *testing.T, s objstore.Store, key, body string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

// skippedKeys checks that exactly the bad keys were skipped, each named
// with why.
func skippedKeys[T interface{ String() string }](t *testing.T, skipped []T, want ...string) {
	t.Helper()
	if len(skipped) != len(want) {
		t.Fatalf("skipped %v, want %v", skipped, want)
	}
	for i, w := range want {
		if got := skipped[i].String(); !strings.Contains(got, w) {
			t.Errorf("skipped[%d] = %q, want it to name %s", i, got, w)
		}
	}
}

// One bad object never hides the good ones: a corrupt, a foreign and a
// newer record are left out of every listing and named; the good record
// is listed and nothing fails.
func TestListingsSkipUnusableRecords(t *testing.T) {
	ctx := context.Background()
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("etcd snapshots", func(t *testing.T) {
		put(t, s, "etcd/n1/good.json", `{"name":"good","node":"n1","created":"2026-01-01T00:00:00Z","compression":"zstd"}`)
		put(t, s, "etcd/n1/corrupt.json", `{"name":"corr`)
		put(t, s, "etcd/n1/foreign.json", `{"name":"other","node":"n2"}`)
		put(t, s, "etcd/n1/newer.json", `{"version":7,"name":"newer","node":"n1"}`)
		list, skipped, err := dbsnap.ListStore(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Name != "good" {
			t.Errorf("listed %v, want only good", list)
		}
		skippedKeys(t, skipped, "etcd/n1/corrupt.json", "etcd/n1/foreign.json", "etcd/n1/newer.json")
		if !strings.Contains(skipped[2].String(), "version 7") {
			t.Errorf("the newer record's reason %q does not say its version", skipped[2])
		}
	})

	t.Run("backup sets", func(t *testing.T) {
		if err := backupset.Write(ctx, s, &backupset.Set{ID: "backup-20260101-000000", Phase: backupset.Completed, Started: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}
		put(t, s, "sets/bad.json", `not json`)
		put(t, s, "sets/copied.json", `{"id":"backup-20260101-000000"}`)
		sets, skipped, err := backupset.List(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(sets) != 1 || sets[0].ID != "backup-20260101-000000" {
			t.Errorf("listed %v, want the good set", sets)
		}
		skippedKeys(t, skipped, "sets/bad.json", "sets/copied.json")
	})

	t.Run("base backups", func(t *testing.T) {
		if err := basebackup.Write(ctx, s, &basebackup.BaseBackup{ID: "base-1", Source: "db", StopTime: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}
		put(t, s, "pg/db/basebackups/half.json", `{"id":`)
		put(t, s, "pg/db/basebackups/moved.json", `{"id":"base-9","source":"elsewhere"}`)
		list, skipped, err := basebackup.List(ctx, s, "db")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != "base-1" {
			t.Errorf("listed %v, want base-1", list)
		}
		skippedKeys(t, skipped, "pg/db/basebackups/half.json", "pg/db/basebackups/moved.json")
	})
}

// failingGets is a store whose reads fail (a store that went down between
// listing and reading).
type failingGets struct{ objstore.Store }

func (failingGets) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("connection refused")
}

// A store that fails is an error, not a listing with records skipped.
func TestListingsFailWhenTheStoreDoes(t *testing.T) {
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "etcd/n1/good.json", `{"name":"good","node":"n1"}`)
	put(t, s, "sets/backup-20260101-000000.json", `{"id":"backup-20260101-000000"}`)
	put(t, s, "pg/db/basebackups/b.json", `{"id":"b","source":"db"}`)
	down := failingGets{s}
	ctx := context.Background()
	if _, _, err := dbsnap.ListStore(ctx, down); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("snapshots: err = %v, want the store's error", err)
	}
	if _, _, err := backupset.List(ctx, down); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("sets: err = %v, want the store's error", err)
	}
	if _, _, err := basebackup.List(ctx, down, "db"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("base backups: err = %v, want the store's error", err)
	}
}
