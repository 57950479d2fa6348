package walship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
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
	// Refused counts a file the archive will not take (another
	// database's, or other bytes under a name it holds); once per file.
	Refused(source string)
}

// Shipper ships one source until its context ends.
type Shipper struct {
	Source   Source
	Store    objstore.Store
	Log      *slog.Logger
	Observer Observer
	// Node names this agent in the source's system record when its first
	// segment claims the source.
	Node string
	// Recipient, when set, encrypts every object (the snapshot key's
	// recipient: the node holds no key that can read them back).
	Recipient age.Recipient
	// Rescan is how often the spool is listed as a safety net besides
	// inotify (default 5s).
	Rescan time.Duration

	mu       sync.Mutex
	queued   map[string]bool
	uploaded map[string]bool // in the store, not yet removed from the spool
	retryAt  map[string]time.Time
	failures map[string]int
	// refused are the files the archive will not take, with why: they
	// stay in the spool, and status shows them until they are gone or
	// ship.
	refused   map[string]string
	refusedAt time.Time
	// system is the source's system record once read or claimed;
	// systemMu makes one claim at a time.
	systemMu  sync.Mutex
	system    *walobj.System
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
	s.mu.Lock()
	s.queued, s.uploaded = map[string]bool{}, map[string]bool{}
	s.retryAt, s.failures, s.refused = map[string]time.Time{}, map[string]int{}, map[string]string{}
	s.mu.Unlock()
	s.queue = make(chan string, 4096)
	s.kick = make(chan struct{}, 1)
	go s.loadSystem(ctx)
	enc, err := walobj.NewEncoder(s.Recipient)
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
	s.forgetRefusedGone(names)
	s.removeShipped()
}

// forgetRefusedGone drops refusals of files no longer in the spool (a
// person removed them).
func (s *Shipper) forgetRefusedGone(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.refused {
		if _, found := slices.BinarySearch(names, n); !found {
			delete(s.refused, n)
		}
	}
}

func (s *Shipper) spoolFiles() ([]string, error) {
	entries, err := os.ReadDir(s.Source.Spool)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if walobj.Classify(e.Name()) != walobj.Unknown && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *Shipper) enqueue(name string) {
	if walobj.Classify(name) == walobj.Unknown {
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
	data := (*raw)[:st.Size()]
	if k := walobj.Classify(name); k == walobj.Segment || k == walobj.Partial {
		if err := s.checkSystem(ctx, name, data); err != nil {
			if errors.Is(err, errRefused) {
				s.refuse(name, err)
			} else {
				s.fail(name, err)
			}
			return
		}
	}
	key := walobj.Key(s.Source.Name, name)
	size := int64(buf.Len())
	// Created only where the archive has nothing under the name: the
	// history a store holds is never replaced.
	_, err = objstore.Create(ctx, s.Store, key, bytes.NewReader(buf.Bytes()), size)
	switch {
	case errors.Is(err, objstore.ErrExists):
		// PostgreSQL runs archive_command again for a file it is not sure
		// was archived (and an agent killed after its upload ships it
		// again): the same bytes are that file, shipped. Encrypted objects
		// differ every time; their headers' checksums of the file do not.
		same, err := walobj.SameFile(ctx, s.Store, key, walobj.ObjectHeader(buf.Bytes()), data)
		if err != nil {
			s.fail(name, fmt.Errorf("compare %s with the archive's %s: %w", name, key, err))
			return
		}
		if !same {
			s.refuse(name, fmt.Errorf("%s in the spool differs from the %s the archive holds (%s): the archive keeps its own; if this database's history is the right one, move the archive's aside, else remove the file from the spool%s",
				name, name, key, s.otherDatabaseHint()))
			return
		}
		s.Log.Info("wal file already archived with the same bytes", "source", s.Source.Name, "file", name)
	case err != nil:
		s.fail(name, err)
		return
	default:
		// Verified: the store holds an object of exactly what was sent
		// (the upload itself is checksummed part by part).
		info, err := s.Store.Stat(ctx, key)
		if err != nil {
			s.fail(name, fmt.Errorf("verify %s: %w", key, err))
			return
		}
		if info.Size != size {
			s.fail(name, fmt.Errorf("verify %s: the store holds %d bytes, %d were sent", key, info.Size, size))
			return
		}
	}
	latency := time.Since(st.ModTime())
	s.mu.Lock()
	s.uploaded[name] = true
	delete(s.retryAt, name)
	delete(s.refused, name)
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

// errRefused marks what the archive will not take: retrying cannot help
// until a person acts.
var errRefused = errors.New("refused")

// refuse keeps a file the archive will not take in the spool and in
// status, and tries it again only seldom (after the person acted).
func (s *Shipper) refuse(name string, err error) {
	msg := strings.TrimPrefix(err.Error(), errRefused.Error()+": ")
	s.mu.Lock()
	first := s.refused[name] == ""
	s.refused[name], s.refusedAt = msg, time.Now()
	s.retryAt[name] = time.Now().Add(32 * time.Second)
	s.mu.Unlock()
	if first && s.Observer != nil {
		s.Observer.Refused(s.Source.Name)
	}
	if first {
		s.Log.Error("wal file refused: kept in the spool", "source", s.Source.Name, "file", name, "err", msg)
	}
}

// loadSystem reads the source's system record when the shipper starts,
// not when the first segment lands: that segment then waits no longer than
// the ones after it, on a connection to the store already open. A record
// not there yet is claimed by the first segment; a store that does not
// answer is asked again then.
func (s *Shipper) loadSystem(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sys, err := walobj.ReadSystem(ctx, s.Store, s.Source.Name)
	if err != nil {
		return
	}
	s.systemMu.Lock()
	defer s.systemMu.Unlock()
	if s.system == nil {
		s.system = sys
	}
}

// checkSystem checks that a segment (or .partial one) is of the database
// whose archive the source is: the first one shipped claims the source
// for its database (wal/<source>/system.json). A file of another database,
// or not a segment at all, is refused (wrapping errRefused); a store that
// fails is an error to retry.
func (s *Shipper) checkSystem(ctx context.Context, name string, data []byte) error {
	h, err := walobj.ParsePageHeader(data)
	if err == nil {
		err = h.CheckName(name)
	}
	if len(data) < walobj.LongPageHeaderSize || (err == nil && int64(len(data)) < h.SegmentSize) {
		// Still being written, by an archive_command that does not copy
		// to a temporary name first: try again.
		return fmt.Errorf("%s in spool %s has %d bytes, less than a segment: is it still being written? (archive_command should copy to a temporary name and rename)", name, s.Source.Spool, len(data))
	}
	if err == nil && int64(len(data)) != h.SegmentSize {
		err = fmt.Errorf("%w: %d bytes, its header says segments are %d", walobj.ErrNotWAL, len(data), h.SegmentSize)
	}
	if err != nil {
		return fmt.Errorf("%w: %s in spool %s is not a WAL segment PostgreSQL wrote (%v): remove it from the spool", errRefused, name, s.Source.Spool, err)
	}
	s.systemMu.Lock()
	defer s.systemMu.Unlock()
	if s.system == nil {
		sys, err := walobj.ReadSystem(ctx, s.Store, s.Source.Name)
		if errors.Is(err, objstore.ErrNotFound) {
			sys, err = walobj.ClaimSystem(ctx, s.Store, walobj.System{
				Source: s.Source.Name, SystemID: strconv.FormatUint(h.SystemID, 10), SegmentSize: h.SegmentSize,
				FirstFile: name, Node: s.Node, Time: time.Now().UTC(),
			})
			if err == nil && sys.ID() == h.SystemID {
				s.Log.Info("wal source claimed for its database", "source", s.Source.Name, "system", sys.SystemID, "segmentSize", sys.SegmentSize, "file", name)
			}
		}
		if err != nil {
			return fmt.Errorf("read the database system of source %s (%s): %w", s.Source.Name, walobj.SystemKey(s.Source.Name), err)
		}
		s.system = sys
	}
	if id := s.system.ID(); id != h.SystemID {
		return fmt.Errorf("%w: segment %s is from database system %d but %s holds %d: another database archives into this source; give it its own source name (if this database replaced that one for good, move wal/%s/ aside first)",
			errRefused, name, h.SystemID, "wal/"+s.Source.Name, id, s.Source.Name)
	}
	if s.system.SegmentSize != h.SegmentSize {
		return fmt.Errorf("%w: segment %s has %d-byte segments but the archive of %s has %d-byte ones: another database archives into this source; give it its own source name",
			errRefused, name, h.SegmentSize, s.Source.Name, s.system.SegmentSize)
	}
	return nil
}

// Refusal says why the file name was refused, or "" if it was not (or is
// not in the spool any more).
func (s *Shipper) Refusal(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[name]
}

// otherDatabaseHint names the source's database, for a refusal.
func (s *Shipper) otherDatabaseHint() string {
	s.systemMu.Lock()
	defer s.systemMu.Unlock()
	if s.system == nil {
		return ""
	}
	return fmt.Sprintf(" (the archive is of database system %s)", s.system.SystemID)
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
	// Refused is how many files in the spool the archive will not take;
	// LastError then says why for the first.
	Refused   int
	FreeBytes int64
	Low       bool
}

// Status reports the spool: backlog, free space, last error.
func (s *Shipper) Status() Status {
	st := Status{Source: s.Source.Name, Spool: s.Source.Spool}
	s.mu.Lock()
	st.NewestLocal, st.ShippedAt, st.LastError, st.LastErrorAt = s.newest, s.newestAt, s.lastErr, s.lastErrAt
	st.Progress = s.progressAt
	if st.Refused = len(s.refused); st.Refused > 0 {
		names := make([]string, 0, len(s.refused))
		for n := range s.refused {
			names = append(names, n)
		}
		sort.Strings(names)
		st.LastError, st.LastErrorAt = s.refused[names[0]], s.refusedAt
		if len(names) > 1 {
			st.LastError += fmt.Sprintf(" (%d more files refused)", len(names)-1)
		}
	}
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
