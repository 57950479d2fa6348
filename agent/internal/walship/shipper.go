package walship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Source is one spool directory and how to ship it.
type Source struct {
	Name  string
	Spool string
	// Concurrency is how many files upload at once.
	Concurrency int
	// LowFreeBytes: below this much free space on the spool's file system
	// status and metrics warn, before PostgreSQL's archiving fails.
	LowFreeBytes int64
}

// Observer receives what a shipper does, for metrics.
type Observer interface {
	Shipped(source string, bytes int64, latency time.Duration)
	Failed(source string)
}

// Shipper ships one source until its context ends.
type Shipper struct {
	Source   Source
	Store    objstore.Store
	Log      *slog.Logger
	Observer Observer
	// Rescan is how often the spool is listed as a safety net besides
	// inotify (default 5s).
	Rescan time.Duration

	mu        sync.Mutex
	queued    map[string]bool
	uploaded  map[string]bool // in the store, not yet removed from the spool
	retryAt   map[string]time.Time
	failures  map[string]int
	lastErr   string
	lastErrAt time.Time
	newest    string
	newestAt  time.Time
	// progressAt is when the shipper last shipped a file or found nothing
	// waiting (or started): how long segments have waited for it.
	progressAt time.Time
	queue      chan string
	kick       chan struct{}
	enc        *walobj.Encoder
	bufs       sync.Pool // compressed objects
	raws       sync.Pool // files as read (*[]byte)
}

// Run watches the spool and ships what lands in it until ctx ends. It
// returns once every goroutine it started has: uploads in flight end
// first (a reload must not start a second shipper of the same spool
// beside them).
func (s *Shipper) Run(ctx context.Context) error {
	if s.Source.Concurrency <= 0 {
		s.Source.Concurrency = 4
	}
	if s.Rescan <= 0 {
		s.Rescan = 5 * time.Second
	}
	s.queued, s.uploaded = map[string]bool{}, map[string]bool{}
	s.retryAt, s.failures = map[string]time.Time{}, map[string]int{}
	s.queue = make(chan string, 4096)
	s.kick = make(chan struct{}, 1)
	enc, err := walobj.NewEncoder()
	if err != nil {
		return err
	}
	s.enc = enc
	s.mu.Lock()
	s.progressAt = time.Now()
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.prepare(ctx) }()
	for range s.Source.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range s.queue {
				s.ship(ctx, name)
			}
		}()
	}
	defer func() { close(s.queue); wg.Wait() }()

	var events chan fsnotify.Event
	var watcher *fsnotify.Watcher
	defer func() {
		if watcher != nil {
			watcher.Close()
		}
	}()
	tick := time.NewTicker(s.Rescan)
	defer tick.Stop()
	for {
		// (Re)arm the watch: the spool may appear after the agent starts.
		if watcher == nil {
			w, err := fsnotify.NewWatcher()
			if err == nil {
				if err = w.Add(s.Source.Spool); err != nil {
					w.Close()
				} else {
					watcher, events = w, w.Events
				}
			}
			if err != nil {
				s.fail("", fmt.Errorf("watch spool %s: %w", s.Source.Spool, err))
			}
		}
		s.scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				watcher, events = nil, nil
				continue
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Write) {
				s.enqueue(filepath.Base(ev.Name))
			}
			// Drain what else is waiting before the next scan.
			for drained := false; !drained; {
				select {
				case ev := <-events:
					s.enqueue(filepath.Base(ev.Name))
				default:
					drained = true
				}
			}
			continue
		case <-tick.C:
		case <-s.kick:
		}
	}
}

// prepare readies what the first file needs, so that it ships as fast as
// the rest: a connection to the store (an unreachable store shows in
// status at once, not when the first file fails) and the compressor's
// state on every CPU.
func (s *Shipper) prepare(ctx context.Context) {
	if _, err := s.Store.Stat(ctx, walobj.Key(s.Source.Name, "00000001.history")); err != nil && !errors.Is(err, objstore.ErrNotFound) && ctx.Err() == nil {
		s.fail("", fmt.Errorf("store: %w", err))
	}
	s.enc.Warm()
}

// scan lists the spool, queues what is not shipped and removes, in name
// order, what is.
func (s *Shipper) scan(ctx context.Context) {
	names, err := s.spoolFiles()
	if err != nil {
		s.fail("", fmt.Errorf("list spool %s: %w", s.Source.Spool, err))
		return
	}
	if len(names) == 0 {
		s.mu.Lock()
		s.progressAt = time.Now()
		s.mu.Unlock()
	}
	for _, n := range names {
		s.enqueue(n)
	}
	s.removeShipped()
}

func (s *Shipper) spoolFiles() ([]string, error) {
	entries, err := os.ReadDir(s.Source.Spool)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if k := walobj.Classify(e.Name()); k != walobj.Unknown && k != walobj.Partial && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *Shipper) enqueue(name string) {
	if k := walobj.Classify(name); k == walobj.Unknown || k == walobj.Partial {
		return // temporary names, foreign files
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued[name] || s.uploaded[name] || time.Now().Before(s.retryAt[name]) {
		return
	}
	select {
	case s.queue <- name:
		s.queued[name] = true
	default: // full: the next scan queues it
	}
}

// ship uploads one file, verifies it and marks it for removal.
func (s *Shipper) ship(ctx context.Context, name string) {
	defer func() {
		s.mu.Lock()
		delete(s.queued, name)
		s.mu.Unlock()
	}()
	if ctx.Err() != nil {
		return
	}
	path := filepath.Join(s.Source.Spool, name)
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return // removed meanwhile
	}
	if err != nil {
		s.fail(name, err)
		return
	}
	raw, _ := s.raws.Get().(*[]byte)
	if raw == nil {
		raw = new([]byte)
	}
	defer s.raws.Put(raw)
	buf, _ := s.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() { buf.Reset(); s.bufs.Put(buf) }()
	if err := s.readEncode(buf, path, st.Size(), raw); err != nil {
		s.fail(name, err)
		return
	}
	key := walobj.Key(s.Source.Name, name)
	size := int64(buf.Len())
	if _, err := s.Store.Put(ctx, key, bytes.NewReader(buf.Bytes()), size); err != nil {
		s.fail(name, err)
		return
	}
	// Verified: the store holds an object of exactly what was sent (the
	// upload itself is checksummed part by part).
	info, err := s.Store.Stat(ctx, key)
	if err != nil {
		s.fail(name, fmt.Errorf("verify %s: %w", key, err))
		return
	}
	if info.Size != size {
		s.fail(name, fmt.Errorf("verify %s: the store holds %d bytes, %d were sent", key, info.Size, size))
		return
	}
	latency := time.Since(st.ModTime())
	s.mu.Lock()
	s.uploaded[name] = true
	delete(s.retryAt, name)
	recovered := s.failures[name] > 0 || s.lastErr != ""
	delete(s.failures, name)
	if name > s.newest || s.newest == "" {
		s.newest = name
	}
	s.newestAt = time.Now()
	s.progressAt = s.newestAt
	if recovered {
		s.lastErr = ""
	}
	s.mu.Unlock()
	if s.Observer != nil {
		s.Observer.Shipped(s.Source.Name, st.Size(), latency)
	}
	s.Log.Debug("wal shipped", "source", s.Source.Name, "file", name, "latency", latency)
	s.removeShipped()
	if recovered {
		// The store answers again: drain the backlog now.
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// removeShipped removes shipped files from the spool in name order,
// stopping at the first one not shipped: what is left is always a
// contiguous tail, so a file that failed to ship stays in sight.
func (s *Shipper) removeShipped() {
	names, err := s.spoolFiles()
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range names {
		if !s.uploaded[n] {
			held := 0
			for _, later := range names[i+1:] {
				if s.uploaded[later] {
					held++
				}
			}
			if held > 0 {
				s.Log.Debug("wal kept in the spool behind a file not shipped", "source", s.Source.Name, "file", n, "held", held)
			}
			return
		}
		if err := os.Remove(filepath.Join(s.Source.Spool, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.lastErr, s.lastErrAt = fmt.Sprintf("remove shipped %s from the spool: %v", n, err), time.Now()
			return
		}
		delete(s.uploaded, n)
	}
}

func (s *Shipper) fail(name string, err error) {
	s.mu.Lock()
	s.lastErr, s.lastErrAt = err.Error(), time.Now()
	if name != "" {
		s.failures[name]++
		backoff := time.Duration(1<<min(s.failures[name], 5)) * time.Second // 2s .. 32s
		s.retryAt[name] = time.Now().Add(backoff)
	}
	s.mu.Unlock()
	if s.Observer != nil && name != "" {
		s.Observer.Failed(s.Source.Name)
	}
	s.Log.Warn("wal shipping", "source", s.Source.Name, "file", name, "err", err)
}

// Status is a source as the node sees it.
type Status struct {
	Source      string
	Spool       string
	NewestLocal string    // newest file this agent shipped since it started
	ShippedAt   time.Time // when
	// Progress is when the shipper last shipped a file or found the spool
	// empty: a backlog older than that is waiting for it.
	Progress     time.Time
	BacklogFiles int64
	BacklogBytes int64
	LastError    string
	LastErrorAt  time.Time
	FreeBytes    int64
	Low          bool
}

// Status reports the spool: backlog, free space, last error.
func (s *Shipper) Status() Status {
	st := Status{Source: s.Source.Name, Spool: s.Source.Spool}
	s.mu.Lock()
	st.NewestLocal, st.ShippedAt, st.LastError, st.LastErrorAt = s.newest, s.newestAt, s.lastErr, s.lastErrAt
	st.Progress = s.progressAt
	s.mu.Unlock()
	if names, err := s.spoolFiles(); err == nil {
		for _, n := range names {
			if fi, err := os.Stat(filepath.Join(s.Source.Spool, n)); err == nil {
				st.BacklogFiles++
				st.BacklogBytes += fi.Size()
			}
		}
	} else if st.LastError == "" {
		st.LastError = err.Error()
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(s.Source.Spool, &fs); err == nil {
		st.FreeBytes = int64(fs.Bavail) * int64(fs.Bsize)
		st.Low = st.FreeBytes < s.Source.LowFreeBytes
	}
	return st
}

// readEncode reads the file and compresses it as it goes, into memory kept
// for the next: segments are 16 MiB each, and a fresh allocation per file
// shows in the latency's tail.
func (s *Shipper) readEncode(dst *bytes.Buffer, path string, size int64, raw *[]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if err := s.enc.ReadEncode(dst, f, size, raw); err != nil {
		return fmt.Errorf("read and compress %s: %w", path, err)
	}
	return nil
}
