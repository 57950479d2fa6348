package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

// events records what happened, in order, and tells who waits for one.
type events struct {
	mu      sync.Mutex
	list    []string
	waiters map[string]chan struct{}
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
	if ch, ok := e.waiters[s]; ok {
		close(ch)
		delete(e.waiters, s)
	}
}

// seen is closed once s happened.
func (e *events) seen(s string) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := make(chan struct{})
	if slices.Contains(e.list, s) {
		close(ch)
		return ch
	}
	if e.waiters == nil {
		e.waiters = map[string]chan struct{}{}
	}
	if w, ok := e.waiters[s]; ok {
		return w
	}
	e.waiters[s] = ch
	return ch
}

func (e *events) get() []string { e.mu.Lock(); defer e.mu.Unlock(); return slices.Clone(e.list) }

// logEvents is a slog handler adding each message to events.
type logEvents struct{ ev *events }

func (h logEvents) Enabled(context.Context, slog.Level) bool      { return true }
func (h logEvents) Handle(_ context.Context, r slog.Record) error { h.ev.add(r.Message); return nil }
func (h logEvents) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h logEvents) WithGroup(string) slog.Handler                 { return h }

// stuckUploads is the real file store whose uploads hang until released,
// whatever the context says: a write stuck on a slow disk or a hung NFS
// mount, as the file store's own write would be.
type stuckUploads struct {
	objstore.Store
	ev      *events
	release chan struct{}
}

func (s *stuckUploads) Put(ctx context.Context, key string, r io.Reader, size int64) (int64, error) {
	s.ev.add("upload started")
	<-s.release
	n, err := s.Store.Put(ctx, key, r, size)
	s.ev.add("upload ended")
	return n, err
}

func waitOrFail(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// When a reload stops the shippers, runShippers (and so the old
// configuration's serve) returns only after every shipper's Run has: an
// upload in flight ends first, so the next configuration's shipper of the
// same spool never runs beside it.
func TestRunShippersReturnsOnlyAfterTheShippersStoppedOnAStuckFileStore(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	base, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	store := &stuckUploads{Store: base, ev: ev, release: make(chan struct{})}
	log := slog.New(logEvents{ev})
	s := &Server{cfg: &agentconfig.Config{}, log: log, metrics: newMetrics(), health: newHealth(), store: store}
	s.shippers = []*walship.Shipper{{Source: walship.Source{Name: "pg", Spool: spool, Concurrency: 1}, Store: store, Log: log, Rescan: 50 * time.Millisecond}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.runShippers(ctx); ev.add("runShippers returned"); close(done) }()
	if err := os.WriteFile(filepath.Join(spool, "000000010000000000000001"), walobjtest.Segment("000000010000000000000001", 7299, 1<<20, 0), 0o600); err != nil {
		t.Fatal(err)
	}
	waitOrFail(t, "the upload to start", ev.seen("upload started"))
	cancel()
	select {
	case <-done:
		close(store.release)
		t.Fatalf("runShippers returned while shipper pg's upload was still in flight: %v", ev.get())
	case <-ev.seen("stopping the wal shippers: waiting for uploads in flight"):
	}
	close(store.release)
	waitOrFail(t, "runShippers to return", done)
	got := ev.get()
	if i, j := slices.Index(got, "upload ended"), slices.Index(got, "runShippers returned"); i < 0 || i > j {
		t.Errorf("events %v: want the upload to end before runShippers returns", got)
	}
}
