package drillreport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func openStore(t *testing.T) objstore.Store {
	t.Helper()
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteReadList(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	older, newer := sample(), sample()
	older.ID, older.Started = "drill-20261130-120000", t0.Add(-24*time.Hour)
	for _, r := range []*Report{older, newer} {
		r.Judge(time.Hour, time.Hour)
		page, err := HTML(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(ctx, store, r, page, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(ctx, store, newer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(newer, got); diff != "" {
		t.Errorf("read back (-wrote +read):\n%s", diff)
	}
	page, err := ReadHTML(ctx, store, got)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("ReadHTML: %v", err)
	}
	list, skipped, err := List(ctx, store)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("List: %v, skipped %v", err, skipped)
	}
	if len(list) != 2 || list[0].ID != newer.ID || list[1].ID != older.ID {
		t.Errorf("List gave %d reports, want newest first", len(list))
	}
}

// A record changed after it was written (a pass turned into a fail or
// back) is refused and named; listings skip it.
func TestTamperedRecordIsRefused(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	r := sample()
	r.Judge(time.Second, time.Hour)
	if err := Write(ctx, store, r, []byte("<html></html>"), nil); err != nil {
		t.Fatal(err)
	}
	data, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(data), `"passed": false`, `"passed": true`, 1)
	if forged == string(data) {
		t.Fatal("the sample did not fail")
	}
	if _, err := store.Put(ctx, JSONKey(r.ID), strings.NewReader(forged), int64(len(forged))); err != nil {
		t.Fatal(err)
	}
	_, err = Read(ctx, store, r.ID)
	if !errors.Is(err, drstore.ErrBadRecord) || !strings.Contains(err.Error(), "drills/drill-20261201-120000.json") || !strings.Contains(err.Error(), "changed after it was written") {
		t.Fatalf("Read of a forged record: %v", err)
	}
	list, skipped, err := List(ctx, store)
	if err != nil || len(list) != 0 || len(skipped) != 1 {
		t.Fatalf("List: %v, %d listed, %d skipped", err, len(list), len(skipped))
	}
	if _, err := store.Put(ctx, HTMLKey(r.ID), strings.NewReader("<html>x</html>"), 14); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHTML(ctx, store, r); !errors.Is(err, drstore.ErrBadRecord) {
		t.Fatalf("ReadHTML of a changed page: %v", err)
	}
}

func TestReadUnknown(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	if _, err := Read(ctx, store, "drill-20200101-000000"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "kubectl dr drill ls") {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := Read(ctx, store, "../sets/x"); err == nil || !strings.Contains(err.Error(), "invalid drill id") {
		t.Errorf("bad id: %v", err)
	}
}
