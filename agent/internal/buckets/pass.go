package buckets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Source is one bucket source, opened.
type Source struct {
	Name   string
	Bucket objstore.Bucket
	Prefix string
	// Concurrency is how many objects copy at once.
	Concurrency   int
	RetentionDays int
}

// Engine runs passes; one at a time per source.
type Engine struct {
	// Store is the cluster's directory of the backup store.
	Store     objstore.Store
	Recipient age.Recipient
	// SpoolDir holds big objects between source and store.
	SpoolDir string
	// PageSize is how many keys a listing page (and at most a segment)
	// holds; default 1000.
	PageSize int
	Log      *slog.Logger
	// Now is the clock (tests set it).
	Now func() time.Time
	// BlobGrace keeps unreferenced blobs younger than it (default an
	// hour; the store's clock).
	BlobGrace time.Duration
	// StillLeads, when set, is asked before every page after the first:
	// a pass whose agent no longer runs the passes (its etcd member lost
	// the leadership) stops there with ErrNotLeader, its finished pages
	// recorded, so the new leader's pass resumes after them instead of
	// two agents copying the same objects at once. An error asking is
	// not an answer: the pass goes on.
	StillLeads func(context.Context) (bool, error)

	mu     sync.Mutex
	locks  map[string]*sync.Mutex
	status map[string]*Status
}

// Result is what one pass did.
type Result struct {
	Source           string
	Pass             time.Time
	Started, Ended   time.Time
	Resumed          bool
	Listed           int
	Unchanged        int
	Copied           int
	Deleted          int
	BytesRead        int64
	BytesUploaded    int64
	Segments         int
	RetentionRemoved int
}

// Status is a source's state for kubectl dr status.
type Status struct {
	Running bool
	// Backlog counts the objects the running pass found changed and has
	// not copied yet.
	Backlog int
	// LastPass is when the newest finished pass started: the bucket's
	// recovery point.
	LastPass  time.Time
	Last      Result
	LastError string
	ErrorAt   time.Time
}

// ErrBusy means a pass of the source is running already.
var ErrBusy = errors.New("a pass of this bucket source is running")

// ErrNotLeader means the pass stopped because its agent's etcd member no
// longer leads.
var ErrNotLeader = errors.New("this agent's etcd member no longer leads")

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) lock(name string) *sync.Mutex {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.locks == nil {
		e.locks = map[string]*sync.Mutex{}
		e.status = map[string]*Status{}
	}
	if e.locks[name] == nil {
		e.locks[name] = &sync.Mutex{}
		e.status[name] = &Status{}
	}
	return e.locks[name]
}

// Status is a copy of the source's status.
func (e *Engine) Status(name string) Status {
	e.lock(name)
	e.mu.Lock()
	defer e.mu.Unlock()
	return *e.status[name]
}

func (e *Engine) update(name string, f func(*Status)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e.status[name])
}

// TryPass runs a pass unless one of the source is running (ErrBusy).
func (e *Engine) TryPass(ctx context.Context, src Source) (Result, error) {
	l := e.lock(src.Name)
	if !l.TryLock() {
		return Result{}, ErrBusy
	}
	defer l.Unlock()
	return e.pass(ctx, src)
}

// Pass runs a pass of src, after the one running (if any).
func (e *Engine) Pass(ctx context.Context, src Source) (Result, error) {
	l := e.lock(src.Name)
	l.Lock()
	defer l.Unlock()
	return e.pass(ctx, src)
}

func (e *Engine) pass(ctx context.Context, src Source) (Result, error) {
	e.update(src.Name, func(s *Status) { s.Running, s.Backlog = true, 0 })
	res, err := e.run(ctx, src)
	e.update(src.Name, func(s *Status) {
		s.Running, s.Backlog = false, 0
		if errors.Is(err, ErrNotLeader) {
			// Not the source's failure: another agent carries on.
			return
		}
		if err != nil {
			s.LastError, s.ErrorAt = err.Error(), e.now()
			return
		}
		s.LastError, s.Last, s.LastPass = "", res, res.Pass
	})
	return res, err
}

var md5RE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (e *Engine) run(ctx context.Context, src Source) (Result, error) {
	res := Result{Source: src.Name, Started: e.now()}
	idx, err := bucketobj.Load(ctx, e.Store, src.Name)
	if err != nil {
		return res, err
	}
	latest := idx.Latest()
	known := map[string]string{}
	for _, s := range idx.Segments {
		for _, v := range s.Entries {
			if !v.Deleted {
				known[v.SHA256] = v.Blob
			}
		}
	}
	var live []string
	for k, v := range latest {
		if !v.Deleted && strings.HasPrefix(k, src.Prefix) {
			live = append(live, k)
		}
	}
	sort.Strings(live)

	pass, seq, after := res.Started.UTC(), 0, ""
	if seg, ok := idx.Resume(); ok {
		pass, seq, after, res.Resumed = seg.Pass, seg.Seq+1, seg.Through, true
		e.Log.Info("bucket pass resumes", "source", src.Name, "pass", pass, "after", after)
	}
	res.Pass = pass
	w := &bucketobj.BlobWriter{Store: e.Store, Source: src.Name, Recipient: e.Recipient, SpoolDir: e.SpoolDir,
		Known: func(sha string) string { return knownBlob(known, sha, e.Recipient != nil) }}
	page := e.PageSize
	if page <= 0 {
		page = 1000
	}
	// li walks the keys live before this pass, beside the listing.
	li := sort.SearchStrings(live, after)
	if li < len(live) && live[li] == after {
		li++
	}
	for {
		objs, more, err := src.Bucket.List(ctx, src.Prefix, after, page)
		if err != nil {
			return res, fmt.Errorf("list %s: %w", src.Bucket, err)
		}
		res.Listed += len(objs)
		through := ""
		if len(objs) > 0 {
			through = objs[len(objs)-1].Key
		}
		seen := make(map[string]bool, len(objs))
		var changed []objstore.BucketObject
		for _, o := range objs {
			seen[o.Key] = true
			if l, ok := latest[o.Key]; ok && !l.Deleted && l.Size == o.Size && (l.ETag == o.ETag || l.MD5 == o.ETag) {
				res.Unchanged++
				continue
			}
			changed = append(changed, o)
		}
		var entries []bucketobj.Version
		for ; li < len(live) && (!more || live[li] <= through); li++ {
			if !seen[live[li]] {
				entries = append(entries, bucketobj.Version{Key: live[li], Time: pass, Deleted: true})
			}
		}
		copied, err := e.copyAll(ctx, src, w, changed, pass, &res)
		if err != nil {
			return res, err
		}
		entries = append(entries, copied...)
		sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
		for _, v := range entries {
			if v.Deleted {
				res.Deleted++
			} else {
				res.Copied++
				known[v.SHA256] = v.Blob
			}
			latest[v.Key] = v
		}
		if len(entries) > 0 || (!more && seq > 0) {
			seg := &bucketobj.Segment{Source: src.Name, Bucket: src.Bucket.String(), Prefix: src.Prefix,
				Pass: pass, Seq: seq, Through: through, Final: !more, Entries: entries}
			if err := bucketobj.WriteSegment(ctx, e.Store, seg); err != nil {
				return res, err
			}
			seq++
			res.Segments++
		}
		if !more {
			break
		}
		after = through
		if e.StillLeads != nil {
			if leads, err := e.StillLeads(ctx); err == nil && !leads {
				return res, fmt.Errorf("%w: stopped after %q; the leader's agent resumes there", ErrNotLeader, through)
			}
		}
	}
	res.Ended = e.now()
	return res, nil
}

func knownBlob(known map[string]string, sha string, encrypted bool) string {
	b := known[sha]
	if b != "" && strings.HasSuffix(b, ".age") == encrypted {
		return b
	}
	return ""
}

// copyAll copies the changed objects, Concurrency at a time. An object
// deleted since the listing is recorded deleted if it was live; one that
// fails fails the page: nothing of it is recorded, the next pass does it
// again (blobs already stored are found, not uploaded twice).
func (e *Engine) copyAll(ctx context.Context, src Source, w *bucketobj.BlobWriter, objs []objstore.BucketObject, pass time.Time, res *Result) ([]bucketobj.Version, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	e.update(src.Name, func(s *Status) { s.Backlog += len(objs) })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := max(1, src.Concurrency)
	jobs := make(chan objstore.BucketObject)
	var (
		mu       sync.Mutex
		out      []bucketobj.Version
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(n, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range jobs {
				v, read, up, err := e.copyOne(ctx, src, w, o)
				e.update(src.Name, func(s *Status) { s.Backlog-- })
				mu.Lock()
				switch {
				case errors.Is(err, objstore.ErrNotFound):
					// Gone since the listing; the next pass records it.
				case err != nil:
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				default:
					out = append(out, v)
					res.BytesRead += read
					res.BytesUploaded += up
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, o := range objs {
		select {
		case jobs <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// copyOne copies one object; an object that changes while it is read is
// read again (up to three times).
func (e *Engine) copyOne(ctx context.Context, src Source, w *bucketobj.BlobWriter, o objstore.BucketObject) (bucketobj.Version, int64, int64, error) {
	var err error
	for range 3 {
		var rc interface {
			Read([]byte) (int, error)
			Close() error
		}
		var info objstore.BucketObject
		rc, info, err = src.Bucket.Get(ctx, o.Key)
		if err != nil {
			return bucketobj.Version{}, 0, 0, err
		}
		var saved bucketobj.Saved
		saved, err = w.Save(ctx, rc, info.Size)
		rc.Close()
		if errors.Is(err, bucketobj.ErrChanged) {
			continue
		}
		if err != nil {
			return bucketobj.Version{}, 0, 0, fmt.Errorf("copy %q from %s: %w", o.Key, src.Bucket, err)
		}
		if md5RE.MatchString(info.ETag) && info.ETag != saved.MD5 {
			return bucketobj.Version{}, 0, 0, fmt.Errorf("copy %q from %s: read bytes with md5 %s, but the bucket's ETag is %s: the object was damaged on the way; the next pass copies it again", o.Key, src.Bucket, saved.MD5, info.ETag)
		}
		return bucketobj.Version{Key: o.Key, Time: info.Modified.UTC(), Size: saved.Size, ETag: info.ETag,
			MD5: saved.MD5, SHA256: saved.SHA256, Blob: saved.Blob}, saved.Size, saved.Uploaded, nil
	}
	return bucketobj.Version{}, 0, 0, fmt.Errorf("copy %q from %s: %w three times; the next pass tries again", o.Key, src.Bucket, err)
}
