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

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

// Two database systems, as initdb would number them.
const (
	sysA uint64 = 7299000000000000001
	sysB uint64 = 7301000000000000002
)

// segment is a 1 MB segment of database sysA.
func segment(name string, fill byte) []byte { return walobjtest.Segment(name, sysA, 1<<20, fill) }

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
		f.refuse(key)
		return 0, errors.New("store down")
	}
	return f.Store.Put(ctx, key, r, size)
}

func (f *flakyStore) refuse(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refused == nil {
		f.refused = map[string]int{}
	}
	f.refused[key]++
}

// wasRefused reports whether a Put or Stat of the file's object was
// refused.
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
		f.refuse(key)
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
	body := func(i int) []byte { return walobjtest.Segment(seg(i), sysA, 1<<20, byte(i)) }
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
		if err := walobj.Fetch(ctx, base, "pg", seg(i), dest, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, body(i)) {
			t.Fatalf("%s fetched back differs", seg(i))
		}
	}
	if err := walobj.Fetch(ctx, base, "pg", seg(10), filepath.Join(dir, "x"), nil); !errors.Is(err, walobj.ErrNotFound) {
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
	land(t, spool, "000000010000000000000001", segment("000000010000000000000001", 1))
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
	for i := 1; i <= 4; i++ { // the upload of 3 fails
		name := fmt.Sprintf("00000001000000000000000%d", i)
		land(t, spool, name, segment(name, byte(i)))
	}
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

// countingObserver counts what the shipper reports.
type countingObserver struct {
	mu                       sync.Mutex
	shipped, failed, refused int
}

func (c *countingObserver) Shipped(string, int64, time.Duration) {
	c.mu.Lock()
	c.shipped++
	c.mu.Unlock()
}
func (c *countingObserver) Failed(string) { c.mu.Lock(); c.failed++; c.mu.Unlock() }
func (c *countingObserver) Refused(string) {
	c.mu.Lock()
	c.refused++
	c.mu.Unlock()
}
func (c *countingObserver) refusals() int { c.mu.Lock(); defer c.mu.Unlock(); return c.refused }

func objectBytes(t *testing.T, store objstore.Store, name string) []byte {
	t.Helper()
	return fetchedBytes(t, store, name, nil)
}

func fetchedBytes(t *testing.T, store objstore.Store, name string, identity age.Identity) []byte {
	t.Helper()
	dest := filepath.Join(t.TempDir(), name)
	if err := walobj.Fetch(context.Background(), store, "pg", name, dest, identity); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dest)
	return data
}

// The first segment claims the source for its database; a segment of
// another database under the same source is refused: kept in the spool,
// named in status and counted once, nothing in the archive replaced,
// while the source's own segments go on shipping.
func TestShipperRefusesAnotherDatabasesSegmentOnAFileStore(t *testing.T) {
	sh := newTestShipper(t, &flakyStore{}, 2)
	obs := &countingObserver{}
	sh.Observer, sh.Node = obs, "node-a"
	sh.start(t)
	one, two, three := "000000010000000000000001", "000000010000000000000002", "000000010000000000000003"
	land(t, sh.spool, one, segment(one, 1))
	waitFor(t, "the first segment to ship", func() bool { return len(spoolNames(t, sh.spool)) == 0 })
	sys, err := walobj.ReadSystem(context.Background(), sh.base, "pg")
	if err != nil || sys.ID() != sysA || sys.SegmentSize != 1<<20 || sys.FirstFile != one || sys.Node != "node-a" {
		t.Fatalf("system record %+v, %v; want system %d, 1 MB segments, claimed by %s on node-a", sys, err, sysA, one)
	}

	// Another database's segments: its 1, already archived, and its 2.
	land(t, sh.spool, one, walobjtest.Segment(one, sysB, 1<<20, 9))
	land(t, sh.spool, two, walobjtest.Segment(two, sysB, 1<<20, 9))
	waitFor(t, "both to be refused", func() bool { return sh.Status().Refused == 2 })
	st := sh.Status()
	for _, want := range []string{"segment " + one + " is from database system 7301000000000000002 but wal/pg holds 7299000000000000001", "another database archives into this source; give it its own source name", "(1 more files refused)"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("status error %q lacks %q", st.LastError, want)
		}
	}
	if obs.refusals() != 2 {
		t.Errorf("%d refusals counted, want 2 (one per file)", obs.refusals())
	}
	if got := objectBytes(t, sh.base, one); !bytes.Equal(got, segment(one, 1)) {
		t.Error("the archive's segment 1 was replaced by the other database's")
	}
	if _, err := sh.base.Stat(context.Background(), walobj.Key("pg", two)); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("the other database's segment 2 is in the archive: %v", err)
	}
	if names := spoolNames(t, sh.spool); len(names) != 2 {
		t.Errorf("spool %v, want both refused files kept", names)
	}

	// The source's own next segment still ships (and waits in the spool
	// behind the refused one).
	land(t, sh.spool, "000000010000000000000003", segment(three, 3))
	waitFor(t, "segment 3 in the store", func() bool {
		_, err := sh.base.Stat(context.Background(), walobj.Key("pg", three))
		return err == nil
	})
	// The person removes the other database's files: status clears.
	os.Remove(filepath.Join(sh.spool, one))
	os.Remove(filepath.Join(sh.spool, two))
	waitFor(t, "status to clear", func() bool { st := sh.Status(); return st.Refused == 0 && st.LastError == "" })
	waitFor(t, "the spool to drain", func() bool { return len(spoolNames(t, sh.spool)) == 0 })
}

// PostgreSQL retries archive_command: the same bytes again are accepted
// as archived; other bytes under an archived name are refused and the
// archive keeps its own. Encrypted objects of one file differ every time
// (a fresh file key): they are compared by the file's checksum.
func TestShipperAcceptsTheSameSegmentAgainAndRefusesOtherBytesOnAFileStore(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   *age.X25519Identity
	}{{"clear", nil}, {"encrypted", id}} {
		t.Run(tc.name, func(t *testing.T) {
			sh := newTestShipper(t, &flakyStore{}, 1)
			var identity age.Identity
			if tc.id != nil {
				sh.Recipient, identity = tc.id.Recipient(), tc.id
			}
			obs := &countingObserver{}
			sh.Observer = obs
			sh.start(t)
			one := "000000010000000000000001"
			land(t, sh.spool, one, segment(one, 1))
			waitFor(t, "the segment to ship", func() bool { return len(spoolNames(t, sh.spool)) == 0 })
			if tc.id != nil {
				if _, err := walobj.Decode(io.Discard, bytes.NewReader(storedObject(t, sh.base, one)), nil); !errors.Is(err, walobj.ErrKey) {
					t.Fatalf("the archive's object reads without the key: %v", err)
				}
			}
			land(t, sh.spool, one, segment(one, 1))
			waitFor(t, "the same segment again to be accepted", func() bool {
				return sh.log.logged("wal file already archived with the same bytes", map[string]string{"file": one})
			})
			waitFor(t, "the spool to drain", func() bool { return len(spoolNames(t, sh.spool)) == 0 })
			if st := sh.Status(); st.LastError != "" || st.Refused != 0 {
				t.Errorf("status after a retried segment: %+v", st)
			}

			land(t, sh.spool, one, segment(one, 2))
			waitFor(t, "other bytes to be refused", func() bool { return sh.Status().Refused == 1 })
			if st := sh.Status(); !strings.Contains(st.LastError, one+" in the spool differs from the "+one+" the archive holds") {
				t.Errorf("status error %q", st.LastError)
			}
			if got := fetchedBytes(t, sh.base, one, identity); !bytes.Equal(got, segment(one, 1)) {
				t.Error("the archive's segment was replaced")
			}
			if obs.refusals() != 1 {
				t.Errorf("%d refusals counted, want 1", obs.refusals())
			}
		})
	}
}

func storedObject(t *testing.T, store objstore.Store, name string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), walobj.Key("pg", name))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A promotion's .partial segment and the new timeline's history file
// ship and fetch back; a file under a segment's name that is no segment
// is refused.
func TestShipperShipsPartialAndHistoryFilesOnAFileStore(t *testing.T) {
	sh := newTestShipper(t, &flakyStore{}, 2)
	sh.start(t)
	partial, history := "000000010000000000000005.partial", "00000002.history"
	land(t, sh.spool, partial, segment(partial, 5))
	land(t, sh.spool, history, []byte("1\t0/5000A28\tno recovery target specified\n"))
	waitFor(t, "both to ship", func() bool { return len(spoolNames(t, sh.spool)) == 0 })
	if got := objectBytes(t, sh.base, partial); !bytes.Equal(got, segment(partial, 5)) {
		t.Error(".partial fetched back differs")
	}
	if got := objectBytes(t, sh.base, history); !strings.HasPrefix(string(got), "1\t0/5000A28") {
		t.Errorf("history fetched back: %q", got)
	}
	land(t, sh.spool, "000000020000000000000006", bytes.Repeat([]byte("not WAL "), 1<<17))
	waitFor(t, "the impostor to be refused", func() bool { return sh.Status().Refused == 1 })
	if st := sh.Status(); !strings.Contains(st.LastError, "is not a WAL segment PostgreSQL wrote") {
		t.Errorf("status error %q", st.LastError)
	}
}

// Two agents whose first segments are of different databases race to
// claim one source on one store: one system wins, and the other agent's
// segment is refused, not shipped.
func TestTwoShippersRaceToClaimASourceOnAFileStore(t *testing.T) {
	for range 5 {
		a := newTestShipper(t, &flakyStore{}, 1)
		a.Store = a.base // the file store's own conditional write, for both
		b := &testShipper{Shipper: &Shipper{Source: Source{Name: "pg", Spool: filepath.Join(a.dir, "spool-b"), Concurrency: 1}, Store: a.base, Log: slog.New(&logRecorder{}), Rescan: 50 * time.Millisecond}}
		b.spool = b.Source.Spool
		os.Mkdir(b.spool, 0o700)
		one := "000000010000000000000001"
		land(t, a.spool, one, walobjtest.Segment(one, sysA, 1<<20, 1))
		land(t, b.spool, one, walobjtest.Segment(one, sysB, 1<<20, 2))
		a.start(t)
		b.start(t)
		settled := func(s *testShipper) bool { return len(spoolNames(t, s.spool)) == 0 || s.Status().Refused == 1 }
		waitFor(t, "both shippers to settle", func() bool { return settled(a) && settled(b) })
		sys, err := walobj.ReadSystem(context.Background(), a.base, "pg")
		if err != nil {
			t.Fatal(err)
		}
		winner, loser := a, b
		if sys.ID() == sysB {
			winner, loser = b, a
		}
		if len(spoolNames(t, winner.spool)) != 0 || loser.Status().Refused != 1 {
			t.Fatalf("system %s won, but winner's spool %v, loser's status %+v", sys.SystemID, spoolNames(t, winner.spool), loser.Status())
		}
		if got := objectBytes(t, a.base, one); !bytes.Equal(got, walobjtest.Segment(one, sys.ID(), 1<<20, map[uint64]byte{sysA: 1, sysB: 2}[sys.ID()])) {
			t.Fatal("the archive's segment is not the winner's")
		}
	}
}
