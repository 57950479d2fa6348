package pgbackup

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func TestPickTakesTheNewestBaseBackupBeforeTheTarget(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	list := []*basebackup.BaseBackup{
		{ID: "a", StopTime: t0},
		{ID: "b", StopTime: t0.Add(time.Hour)},
		{ID: "c", StopTime: t0.Add(2 * time.Hour)},
	}
	for _, tc := range []struct {
		target time.Time
		want   string
	}{
		{time.Time{}, "c"},
		{t0.Add(90 * time.Minute), "b"},
		{t0.Add(time.Hour), "b"},
		{t0, "a"},
	} {
		b, err := basebackup.Pick(list, tc.target)
		if err != nil || b.ID != tc.want {
			t.Errorf("basebackup.Pick(%v) = %v, %v; want %s", tc.target, b, err, tc.want)
		}
	}
	if _, err := basebackup.Pick(list, t0.Add(-time.Minute)); !errors.Is(err, basebackup.ErrNoBaseBackup) {
		t.Errorf("target before every base backup: %v", err)
	}
	if _, err := basebackup.Pick(nil, time.Time{}); !errors.Is(err, basebackup.ErrNoBaseBackup) {
		t.Errorf("no base backups: %v", err)
	}
}

// basebackup.List reads one source's records, or every source's, oldest first; a
// source whose name starts like another's is not mixed in.
func TestListBaseBackupsBySourceAndAll(t *testing.T) {
	ctx := context.Background()
	store := fileStore(t)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i, b := range []*basebackup.BaseBackup{{ID: "a2", Source: "a"}, {ID: "b1", Source: "b"}, {ID: "a1", Source: "a"}, {ID: "ab1", Source: "ab"}} {
		b.StopTime = t0.Add(time.Duration([]int{3, 2, 1, 4}[i]) * time.Hour)
		if err := basebackup.Write(ctx, store, b); err != nil {
			t.Fatal(err)
		}
	}
	// Not records: WAL, and a stray object beside them.
	for _, k := range []string{"wal/a/00000001/000000010000000000000001.zst", "pg/a/notes.json"} {
		if _, err := store.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(source string) []string {
		list, _, err := basebackup.List(ctx, store, source)
		if err != nil {
			t.Fatalf("basebackup.List(%q): %v", source, err)
		}
		var out []string
		for _, b := range list {
			out = append(out, b.Source+"/"+b.ID)
		}
		return out
	}
	if got, want := ids("a"), []string{"a/a1", "a/a2"}; !slices.Equal(got, want) {
		t.Errorf("basebackup.List(a) = %v, want %v", got, want)
	}
	if got, want := ids(""), []string{"a/a1", "b/b1", "a/a2", "ab/ab1"}; !slices.Equal(got, want) {
		t.Errorf("basebackup.List(every source) = %v, want %v", got, want)
	}
	if got := ids("c"); len(got) != 0 {
		t.Errorf("basebackup.List(c) = %v, want none", got)
	}
}

// fileStore is a store in a temporary directory (file://).
func fileStore(t *testing.T) objstore.Store {
	t.Helper()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return store
}
