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
	refused map[string]int // Puts refused, by key
}

func (f *flakyStore) Put(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	if f.isDown() || (f.failKey != "" && strings.Contains(key, f.failKey)) {
		f.mu.Lock()
		if f.refused == nil {
			f.refused = map[string]int{}
		}
		f.refused[key]++
		f.mu.Unlock()
		return 0, errors.New("store down")
	}
	return f.Store.Put(ctx, key, r, size)
}

// wasRefused reports whether a Put of the file's object was refused.
func (f *flakyStore) wasRefused(file string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused[walobj.Key("pg", file)] > 0
}

// logRecorder keeps what the shipper logs, so a test can wait for it to
// say it considered something.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// logged reports whether a record with msg and these attributes (as
// printed with %v) was logged.
func (l *logRecorder) logged(msg string, attrs map[string]string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		found := 0
		r.Attrs(func(a slog.Attr) bool {
			if v, ok := attrs[a.Key]; ok && a.Value.String() == v {
				found++
			}
			return true
		})
		if found == len(attrs) {
			return true
		}
	}
	return false
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
	log        *logRecorder
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
	log := &logRecorder{}
	sh := &Shipper{Source: Source{Name: "pg", Spool: spool, Concurrency: concurrency}, Store: flaky, Log: slog.New(log), Rescan: 50 * time.Millisecond}
	return &testShipper{Shipper: sh, dir: dir, spool: spool, base: base, store: flaky, log: log}
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
	waitFor(t, "the shipper to try each new file and be refused", func() bool {
		for i := 6; i <= 9; i++ {
			if !store.wasRefused(seg(i)) {
				return false
			}
		}
		return true
	})
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
	// The shipper shipped 4, then considered removing it and kept it
	// behind 3.
	waitFor(t, "the shipper to keep 4 behind 3", func() bool {
		return sh.log.logged("wal kept in the spool behind a file not shipped", map[string]string{"file": "000000010000000000000003", "held": "1"})
	})
	for _, gone := range []string{"000000010000000000000001", "000000010000000000000002"} {
		if _, err := os.Stat(filepath.Join(spool, gone)); !os.IsNotExist(err) {
			t.Errorf("%s, shipped before the file not shipped, is still in the spool: %v", gone, err)
		}
	}
	if _, err := sh.base.Stat(context.Background(), walobj.Key("pg", "000000010000000000000004")); err != nil {
		t.Fatalf("4 is not in the store: %v", err)
	}
	for _, kept := range []string{"000000010000000000000003", "000000010000000000000004"} {
		if _, err := os.Stat(filepath.Join(spool, kept)); err != nil {
			t.Errorf("%s was removed from the spool past a file not shipped: %v", kept, err)
		}
	}
}
