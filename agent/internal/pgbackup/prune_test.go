package pgbackup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Retention on a file store (the restic part is the lab's e2e test): a
// dry run removes nothing; the real one removes the older base backups'
// records and the WAL before the oldest kept one's first file, on its
// timeline and older ones, and keeps every history file and the WAL of a
// newer timeline.
func TestPruneRemovesOldBaseBackupsAndTheWALOnlyTheyUse(t *testing.T) {
	ctx := context.Background()
	store := fileStore(t)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	// Four base backups an hour apart, starting in segments 2, 5, 8, 0B
	// of timeline 1.
	starts := []string{"000000010000000000000002", "000000010000000000000005", "000000010000000000000008", "00000001000000000000000B"}
	for i, seg := range starts {
		b := &basebackup.BaseBackup{ID: fmt.Sprintf("base-%d", i), Source: "db", StartTime: t0.Add(time.Duration(i) * time.Hour),
			StopTime: t0.Add(time.Duration(i)*time.Hour + time.Minute),
			Label:    fmt.Sprintf("START WAL LOCATION: 0/%X000028 (file %s)\nCHECKPOINT LOCATION: 0/%X000060\n", i, seg, i)}
		if err := basebackup.Write(ctx, store, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	put := func(name string) {
		if _, err := store.Put(ctx, walobj.Key("db", name), strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	for seg := 1; seg <= 0x0C; seg++ {
		put(fmt.Sprintf("0000000100000000%08X", seg))
	}
	put("000000010000000000000002.00000028.backup")
	put("000000010000000000000005.00000028.backup")
	put("00000002.history")
	put("000000020000000000000003") // a later timeline, forked early: kept
	walNames := func() []string {
		objs, err := store.List(ctx, "wal/db/")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range objs {
			names = append(names, strings.TrimSuffix(o.Key[strings.LastIndex(o.Key, "/")+1:], walobj.ObjectSuffix))
		}
		return names
	}
	before := walNames()

	policy := agentconfig.Retention{KeepLast: 2}
	dry, err := Prune(ctx, store, nil, "db", policy, true)
	if err != nil {
		t.Fatal(err)
	}
	if list, _, _ := basebackup.List(ctx, store, "db"); len(list) != 4 || !slices.Equal(walNames(), before) {
		t.Fatalf("dry run removed something: %d records, WAL %v", len(list), walNames())
	}
	res, err := Prune(ctx, store, nil, "db", policy, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*PruneResult{dry, res} {
		var removed []string
		for _, b := range r.Removed {
			removed = append(removed, b.ID)
		}
		slices.Sort(removed)
		// Segments 1 to 7 and the two .backup files.
		if r.FirstWAL != starts[2] || !slices.Equal(removed, []string{"base-0", "base-1"}) || r.WALFiles != 9 {
			t.Errorf("dry run %v: first WAL %s, removed %v, %d WAL files; want %s, [base-0 base-1], 9", r.DryRun, r.FirstWAL, removed, r.WALFiles, starts[2])
		}
	}
	list, _, _ := basebackup.List(ctx, store, "db")
	if len(list) != 2 || list[0].ID != "base-2" || list[1].ID != "base-3" {
		t.Errorf("records left: %v", list)
	}
	want := []string{"00000002.history", "000000010000000000000008", "000000010000000000000009", "00000001000000000000000A",
		"00000001000000000000000B", "00000001000000000000000C", "000000020000000000000003"}
	got := walNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("WAL left:\n got %v\nwant %v", got, want)
	}

	// A label that names no start file stops the prune before it removes
	// anything.
	bad := &basebackup.BaseBackup{ID: "base-x", Source: "db", StartTime: t0.Add(-time.Hour), StopTime: t0.Add(5 * time.Hour), Label: "garbled"}
	if err := basebackup.Write(ctx, store, bad, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Prune(ctx, store, nil, "db", agentconfig.Retention{KeepLast: 1}, false); err == nil || !strings.Contains(err.Error(), "nothing was removed") {
		t.Errorf("garbled label: %v", err)
	}
	if list, _, _ := basebackup.List(ctx, store, "db"); len(list) != 3 {
		t.Errorf("after a refused prune %d records are left, want 3", len(list))
	}
}

// deleteRefused is a store whose credentials may not delete.
type deleteRefused struct{ objstore.Store }

func (deleteRefused) Delete(_ context.Context, key string) error {
	return fmt.Errorf("delete %s: %w", key, objstore.ErrDenied)
}

// With put/get-only credentials the prune stops at the first refused
// delete, without an error: every base backup and WAL file is still
// there, and the result says why.
func TestPruneRefusedDeleteKeepsEverything(t *testing.T) {
	ctx := context.Background()
	store := fileStore(t)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i, seg := range []string{"000000010000000000000002", "000000010000000000000005"} {
		b := &basebackup.BaseBackup{ID: fmt.Sprintf("base-%d", i), Source: "db", StartTime: t0.Add(time.Duration(i) * time.Hour),
			StopTime: t0.Add(time.Duration(i)*time.Hour + time.Minute), Label: fmt.Sprintf("START WAL LOCATION: 0/0 (file %s)\n", seg)}
		if err := basebackup.Write(ctx, store, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Put(ctx, walobj.Key("db", "000000010000000000000001"), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	res, err := Prune(ctx, deleteRefused{store}, nil, "db", agentconfig.Retention{KeepLast: 1}, false)
	if err != nil {
		t.Fatalf("prune with delete refused: %v", err)
	}
	if len(res.Removed) != 0 || len(res.Kept) != 2 || res.WALFiles != 0 || !strings.Contains(res.Deferred, "remove base backup base-0") {
		t.Errorf("removed %d, kept %d, WAL %d, deferred %q; want nothing removed, both kept, why", len(res.Removed), len(res.Kept), res.WALFiles, res.Deferred)
	}
	if list, _, _ := basebackup.List(ctx, store, "db"); len(list) != 2 {
		t.Errorf("records left: %d", len(list))
	}
	if objs, _ := store.List(ctx, "wal/db/"); len(objs) != 1 {
		t.Errorf("WAL left: %d", len(objs))
	}
}
