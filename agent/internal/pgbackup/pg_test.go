package pgbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// PlanRestore reads the records, the WAL names and the history files
// from the store and chooses as pgtarget does: the newest base backup
// before the target, along timeline 2 once its history file is there.
func TestPlanRestoreReadsTheStore(t *testing.T) {
	ctx := context.Background()
	store := fileStore(t)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		lsn := fmt.Sprintf("0/%X000028", 2+2*i)
		b := &basebackup.BaseBackup{ID: id, Source: "db", Timeline: 1, StartLSN: lsn, StopLSN: lsn, StopTime: t0.Add(time.Duration(i) * time.Hour)}
		if err := basebackup.Write(ctx, store, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The WAL is encrypted, as shippers write it: the plan reads the
	// history files with the request's key.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := walobj.NewEncoder(id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) {
		var obj bytes.Buffer
		if err := enc.Encode(&obj, []byte(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, walobj.Key("db", name), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
	}
	for n := 2; n <= 7; n++ {
		put(fmt.Sprintf("0000000100000000%08X", n), "segment")
	}
	for _, tc := range []struct {
		target pgtarget.Target
		want   string
	}{
		{pgtarget.Target{}, "c"},
		{pgtarget.Target{Kind: pgtarget.Time, Time: t0.Add(90 * time.Minute)}, "b"},
		{pgtarget.Target{Kind: pgtarget.Time, Time: t0.Add(time.Hour)}, "b"},
		{pgtarget.Target{Kind: pgtarget.AtLSN, LSN: 0x3000000}, "a"},
	} {
		p, err := PlanRestore(ctx, store, "db", tc.target, id)
		if err != nil || p.Base.ID != tc.want || p.Err() != nil {
			t.Errorf("PlanRestore(%s) = %v, %v; want %s", tc.target.Describe(), p, err, tc.want)
		}
	}
	if _, err := PlanRestore(ctx, store, "db", pgtarget.Target{Kind: pgtarget.Time, Time: t0.Add(-time.Minute)}, id); !errors.Is(err, basebackup.ErrNoBaseBackup) {
		t.Errorf("target before every base backup: %v", err)
	}
	if _, err := PlanRestore(ctx, store, "other", pgtarget.Target{}, id); !errors.Is(err, basebackup.ErrNoBaseBackup) {
		t.Errorf("no base backups: %v", err)
	}
	// Timeline 2 branched in segment 7, after c's end.
	put("00000002.history", "1\t0/7800000\tno recovery target specified\n")
	put("000000020000000000000007", "segment")
	put("000000020000000000000008", "segment")
	p, err := PlanRestore(ctx, store, "db", pgtarget.Target{}, id)
	if err != nil || p.Base.ID != "c" || p.Timeline != 2 || len(p.Steps) != 2 || p.Steps[1].First != "000000020000000000000007" || p.Steps[1].Last != "000000020000000000000008" {
		t.Errorf("latest with timeline 2: %+v, %v", p, err)
	}
	// A history file that is not one is an error, not a guess.
	put("00000003.history", "garbage")
	if _, err := PlanRestore(ctx, store, "db", pgtarget.Target{}, id); err == nil || !strings.Contains(err.Error(), "00000003.history of db") {
		t.Errorf("corrupt history file: %v", err)
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
		if err := basebackup.Write(ctx, store, b, nil); err != nil {
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
