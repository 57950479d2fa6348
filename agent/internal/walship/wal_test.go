package walship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// flakyStore is a stand-in for a store that fails: the real file store,
// failing every Put and Stat while down (the lab's e2e tests stop the real
// MinIO).
type flakyStore struct {
	objstore.Store
	mu      sync.Mutex
	down    bool
	failKey string
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	if f.isDown() || (f.failKey != "" && strings.Contains(key, f.failKey)) {
		return 0, errors.New("store down")
	}
	return f.Store.Put(ctx, key, r, size)
}

func (f *flakyStore) Stat(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if f.isDown() {
		return objstore.ObjectInfo{}, errors.New("store down")
	}
	return f.Store.Stat(ctx, key)
}

func (f *flakyStore) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *flakyStore) isDown() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.down }

// testShipper ships source pg from a spool to a file store, both in a
// temporary directory; the store fails as flaky says.
type testShipper struct {
	*Shipper
	dir, spool string
	base       objstore.Store
	store      *flakyStore
}

func newTestShipper(t *testing.T, flaky *flakyStore, concurrency int) *testShipper {
	t.Helper()
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	base, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	flaky.Store = base
	sh := &Shipper{Source: Source{Name: "pg", Spool: spool, Concurrency: concurrency}, Store: flaky, Log: slog.New(slog.DiscardHandler), Rescan: 50 * time.Millisecond}
	return &testShipper{Shipper: sh, dir: dir, spool: spool, base: base, store: flaky}
}

// start runs the shipper until the test ends.
func (ts *testShipper) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ts.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// land copies a file into the spool the way archive_command does.
func land(t *testing.T, spool, name string, body []byte) {
	t.Helper()
	tmp := filepath.Join(spool, "."+name+".tmp")
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spoolNames(t *testing.T, spool string) []string {
	entries, _ := os.ReadDir(spool)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestShipperShipsVerifiesAndDrainsAfterAnOutageOnAFlakyFileStore(t *testing.T) {
	sh := newTestShipper(t, &flakyStore{}, 3)
	sh.start(t)
	ctx, dir, spool, base, store := context.Background(), sh.dir, sh.spool, sh.base, sh.store

	seg := func(i int) string { return fmt.Sprintf("0000000100000000%08X", i) }
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1<<16) }
	for i := 1; i <= 5; i++ {
		land(t, spool, seg(i), body(i))
	}
	land(t, spool, ".in-progress.tmp", []byte("not yet"))
	waitFor(t, "the spool to drain", func() bool { return len(spoolNames(t, spool)) == 1 })

	// The store goes down: files pile up, in sight, and nothing is lost.
	store.setDown(true)
	for i := 6; i <= 9; i++ {
		land(t, spool, seg(i), body(i))
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(spoolNames(t, spool)); n != 5 {
		t.Fatalf("%d files in the spool while the store is down, want 5: %v", n, spoolNames(t, spool))
	}
	if st := sh.Status(); st.BacklogFiles != 4 || !strings.Contains(st.LastError, "store down") {
		t.Errorf("status while down: backlog %d, error %q", st.BacklogFiles, st.LastError)
	}
	store.setDown(false)
	waitFor(t, "the backlog to drain", func() bool { return len(spoolNames(t, spool)) == 1 })

	a, err := walobj.ListArchived(ctx, base, "pg")
	if err != nil {
		t.Fatal(err)
	}
	if a.Files != 9 || a.Newest != seg(9) || len(a.Gaps) != 0 {
		t.Errorf("archived %+v, want 9 files up to %s without gaps", a, seg(9))
	}
	for i := 1; i <= 9; i++ {
		dest := filepath.Join(dir, "restored")
		if err := walobj.Fetch(ctx, base, "pg", seg(i), dest); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, body(i)) {
			t.Fatalf("%s fetched back differs", seg(i))
		}
	}
	if err := walobj.Fetch(ctx, base, "pg", seg(10), filepath.Join(dir, "x")); !errors.Is(err, walobj.ErrNotFound) {
		t.Errorf("missing segment: %v, want walobj.ErrNotFound", err)
	}
}

// A store that does not answer shows in status as soon as the shipper
// starts, before any file lands; the first file shipped clears it.
func TestShipperReportsAnUnreachableStoreAtStartOnAFlakyFileStore(t *testing.T) {
	sh := newTestShipper(t, &flakyStore{down: true}, 0)
	sh.start(t)
	store, spool := sh.store, sh.spool
	waitFor(t, "status to report the store", func() bool { return strings.Contains(sh.Status().LastError, "store: store down") })
	store.setDown(false)
	land(t, spool, "000000010000000000000001", []byte("wal"))
	waitFor(t, "the file to ship", func() bool { return len(spoolNames(t, spool)) == 0 })
	if st := sh.Status(); st.LastError != "" || st.NewestLocal != "000000010000000000000001" {
		t.Errorf("status after shipping: newest %q, error %q; want the file and no error", st.NewestLocal, st.LastError)
	}
}

// A file that cannot be shipped holds back the removal of every later
// one: the spool keeps a contiguous tail.
func TestShipperNeverRemovesPastAFileNotShippedOnAFlakyFileStore(t *testing.T) {
	sh := newTestShipper(t, &flakyStore{failKey: "000000010000000000000003"}, 0)
	spool := sh.spool
	land(t, spool, "000000010000000000000001", []byte("one"))
	land(t, spool, "000000010000000000000002", []byte("two"))
	land(t, spool, "000000010000000000000003", []byte("three: its upload fails"))
	land(t, spool, "000000010000000000000004", []byte("four"))
	sh.start(t)
	waitFor(t, "the first two to go", func() bool {
		_, err := os.Stat(filepath.Join(spool, "000000010000000000000002"))
		return os.IsNotExist(err)
	})
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(spool, "000000010000000000000004")); err != nil {
		t.Errorf("a file after one not shipped was removed: %v", err)
	}
}
