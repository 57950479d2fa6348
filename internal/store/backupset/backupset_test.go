package backupset

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func TestRecordsCarryTheFormatVersionAndNewerOnesAreRefused(t *testing.T) {
	ctx := context.Background()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	set := &Set{ID: NewID(time.Unix(1700000000, 0)), Phase: Completed}
	if err := Write(ctx, store, set, nil); err != nil {
		t.Fatal(err)
	}
	got, err := Read(ctx, store, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 {
		t.Errorf("stored set has version %d, want 1", got.Version)
	}

	// A set without a version (written before records had one) is version 1.
	old := `{"id":"backup-20200101-000000","phase":"Completed"}`
	if _, err := store.Put(ctx, "sets/backup-20200101-000000.json", strings.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(ctx, store, "backup-20200101-000000"); err != nil {
		t.Errorf("set without a version: %v", err)
	}

	newer := `{"version":2,"id":"backup-20300101-000000","phase":"Completed"}`
	if _, err := store.Put(ctx, "sets/backup-20300101-000000.json", strings.NewReader(newer), int64(len(newer))); err != nil {
		t.Fatal(err)
	}
	_, err = Read(ctx, store, "backup-20300101-000000")
	if err == nil || !strings.Contains(err.Error(), "format version 2") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("set of format version 2: err = %v, want a refusal naming the version and what to do", err)
	}
}

func TestDecideCountsBucketParts(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  Set
		want string
	}{
		{"a bucket pass alone", Set{Buckets: []BucketPart{{Source: "media"}}}, Completed},
		{"a failed pass beside a snapshot", Set{Etcd: &EtcdPart{Snapshot: "s"}, Buckets: []BucketPart{{Source: "media", Error: "unreachable"}}}, PartiallyFailed},
		{"only a failed pass", Set{Buckets: []BucketPart{{Source: "media", Error: "unreachable"}}}, Failed},
	} {
		tt.set.Decide()
		if tt.set.Phase != tt.want {
			t.Errorf("%s: phase %s, want %s", tt.name, tt.set.Phase, tt.want)
		}
	}
}
