package walstage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/units"
)

// The stage's own files, beside the WAL files (whose names never start
// with a dot).
const (
	// planFile lists the files the stage holds once complete, one a line:
	// a name not in it is not in the archive. restore_command reads these
	// three (pgbackup's stageRestoreCommand, ReplayWaitCommand).
	planFile = ".plan"
	// activeFile holds the pid of the agent while it fetches.
	activeFile = ".staging"
	// failedFile says why staging stopped before it was complete.
	failedFile = ".failed"
)

// DefaultWorkers is how many files a stage fetches at once.
const DefaultWorkers = 8

// Dir is the stage directory of a restore into target.
func Dir(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".wal-stage")
}

// Options say what to stage.
type Options struct {
	Source   string
	Store    objstore.Store
	Identity age.Identity
	// Dir is the stage directory (Dir(target)).
	Dir string
	// First is the segment replay starts from: the stage holds every
	// segment from it on, on its timeline and every later one, and every
	// history file.
	First string
	// SegmentSize is the database's (0: PostgreSQL's default).
	SegmentSize int64
	Workers     int
	// Reserve is what the restore writes besides on the stage's file
	// system (the base backup): the free space check counts it.
	Reserve int64
	// NoSync skips each file's fsync: for a stage thrown away after the
	// replay it feeds (a crash loses the replay anyway).
	NoSync bool
	// Progress, if set, is called as files arrive, one call at a time.
	Progress func(done, total int, bytes int64)
}

// Stage is staging under way or done.
type Stage struct {
	Dir   string
	Files int
	// Need is the bytes the files take on disk (segments at the
	// database's segment size).
	Need    int64
	done    chan struct{}
	err     error
	cancel  context.CancelFunc
	bytes   atomic.Int64
	stopped atomic.Bool
}

// ErrNoSpace means the stage's file system cannot hold the WAL to stage.
var ErrNoSpace = errors.New("not enough free disk for the WAL stage")

// Start lists what the restore needs, checks that the stage's file system
// holds it, writes the plan and starts fetching in the background; Wait
// tells how that ended. The directory must not exist, or be an earlier
// stage (which is replaced: it holds copies of the store's files only).
func Start(ctx context.Context, o Options) (*Stage, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	segSize := o.SegmentSize
	if segSize <= 0 {
		segSize = walobj.DefaultSegmentSize
	}
	if walobj.Classify(o.First) != walobj.Segment {
		return nil, fmt.Errorf("stage WAL of %s: %q is not a segment's name", o.Source, o.First)
	}
	objs, err := o.Store.List(ctx, "wal/"+o.Source+"/")
	if err != nil {
		return nil, fmt.Errorf("list the WAL of %s: %w", o.Source, err)
	}
	var histories, segments []string
	var need int64
	for _, obj := range objs {
		name, ok := strings.CutSuffix(path.Base(obj.Key), walobj.ObjectSuffix)
		if !ok {
			continue
		}
		switch walobj.Classify(name) {
		case walobj.History:
			// Small; the object's size bounds what the file takes, plus a
			// block.
			histories = append(histories, name)
			need += obj.Size + 4096
		case walobj.Segment:
			// Names of later timelines compare by position as the first's.
			if walobj.Timeline(name) >= walobj.Timeline(o.First) && name[8:] >= o.First[8:] {
				segments = append(segments, name)
				need += segSize
			}
		}
	}
	sort.Strings(histories)
	sort.Strings(segments)
	names := append(histories, segments...)
	if err := prepareDir(o.Dir); err != nil {
		return nil, err
	}
	// Replay needs room of its own in pg_wal besides the stage.
	margin := 4 * segSize
	var fs unix.Statfs_t
	if err := unix.Statfs(o.Dir, &fs); err != nil {
		os.RemoveAll(o.Dir)
		return nil, fmt.Errorf("free space for the WAL stage %s: %w", o.Dir, err)
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < need+margin+o.Reserve {
		os.RemoveAll(o.Dir)
		return nil, fmt.Errorf("%w: the restore replays %d WAL files of %s (%s), staged in %s before replay, and with the base backup (%s) and room for replay it needs %s; that file system has %s free: free space there, or restore to a --target-dir on a larger file system",
			ErrNoSpace, len(names), o.Source, units.HumanBytes(need), o.Dir, units.HumanBytes(o.Reserve), units.HumanBytes(need+margin+o.Reserve), units.HumanBytes(free))
	}
	if err := durable.WriteFile(filepath.Join(o.Dir, planFile), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		os.RemoveAll(o.Dir)
		return nil, fmt.Errorf("write the WAL stage's plan: %w", err)
	}
	if err := durable.WriteFile(filepath.Join(o.Dir, activeFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		os.RemoveAll(o.Dir)
		return nil, fmt.Errorf("mark the WAL stage active: %w", err)
	}
	// The request's context: a restore whose plugin went away stops.
	ctx, cancel := context.WithCancel(ctx)
	s := &Stage{Dir: o.Dir, Files: len(names), Need: need, done: make(chan struct{}), cancel: cancel}
	go s.run(ctx, o, names)
	return s, nil
}

// prepareDir makes the stage directory (0700: the restore gives it to the
// database's user; only it and root read the WAL), replacing an earlier
// stage.
func prepareDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, planFile)); err != nil {
			return fmt.Errorf("%s exists and is not a WAL stage: move it away (the restore stages its WAL there)", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the earlier WAL stage %s: %w", dir, err)
		}
	}
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make the WAL stage %s: %w", dir, err)
	}
	return nil
}

// run fetches names in order with o.Workers at once; a file fetched is
// verified (walobj.FetchFile decodes it against its checksum) before it
// appears under its name.
func (s *Stage) run(ctx context.Context, o Options, names []string) {
	defer close(s.done)
	jobs := make(chan string)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			s.cancel()
		}
		mu.Unlock()
	}
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				dest := filepath.Join(o.Dir, name)
				var opts []durable.Option
				if o.NoSync {
					opts = append(opts, durable.NoSync())
				}
				if err := walobj.FetchFile(ctx, o.Store, o.Source, name, dest, 0o644, o.Identity, opts...); err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("stage %s of %s: %w", name, o.Source, err))
					}
					continue
				}
				st, _ := os.Stat(dest)
				n := s.bytes.Add(st.Size())
				// One report at a time, in order.
				mu.Lock()
				done++
				if o.Progress != nil {
					o.Progress(done, len(names), n)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, n := range names {
		select {
		case jobs <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	mu.Lock()
	err := firstErr
	mu.Unlock()
	if err == nil && ctx.Err() != nil {
		err = errStopped
		if !s.stopped.Load() {
			err = fmt.Errorf("%w: %w", errStopped, context.Cause(ctx))
		}
	}
	if err != nil {
		// The restore_command waiting for a file learns why it will not
		// come.
		_ = durable.WriteFile(filepath.Join(o.Dir, failedFile), []byte(err.Error()+"\n"), 0o644)
	}
	_ = os.Remove(filepath.Join(o.Dir, activeFile))
	_ = durable.SyncDir(o.Dir)
	s.err = err
}

// Wait waits until staging has ended and says how.
func (s *Stage) Wait() error {
	<-s.done
	return s.err
}

// Stop ends staging (what is staged stays), waits for it and returns why
// it failed before, nil if it did not (it completed, or was stopped here).
func (s *Stage) Stop() error {
	s.stopped.Store(true)
	s.cancel()
	<-s.done
	if errors.Is(s.err, errStopped) {
		return nil
	}
	return s.err
}

// errStopped is staging stopped before it was complete.
var errStopped = errors.New("staging stopped before it was complete")

// Bytes is how much has been staged so far.
func (s *Stage) Bytes() int64 { return s.bytes.Load() }

// Remove stops staging and removes the stage.
func (s *Stage) Remove() error {
	_ = s.Stop()
	return os.RemoveAll(s.Dir)
}
