package buckets

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	// PackSize is how full a pack of small objects gets before it is
	// stored (default bucketobj.DefaultPackSize).
	PackSize int
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
	known := map[string]stored{}
	for _, s := range idx.Segments {
		for _, v := range s.Entries {
			if !v.Deleted {
				known[v.SHA256] = stored{v.Blob, v.Offset}
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
	var knownMu sync.Mutex
	lookup := func(sha string) (stored, bool) {
		knownMu.Lock()
		defer knownMu.Unlock()
		k, ok := known[sha]
		return k, ok && strings.HasSuffix(k.blob, ".age") == (e.Recipient != nil)
	}
	w := &bucketobj.BlobWriter{Store: e.Store, Source: src.Name, Recipient: e.Recipient, SpoolDir: e.SpoolDir,
		Known: func(sha string) string {
			if k, ok := lookup(sha); ok && !bucketobj.IsPack(k.blob) {
				return k.blob
			}
			return ""
		}}
	c := &copier{blobs: w, lookup: lookup,
		packs: &bucketobj.PackWriter{Store: e.Store, Source: src.Name, Recipient: e.Recipient, Size: e.PackSize}}
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
		copied, err := e.copyAll(ctx, src, c, changed, &res)
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
				knownMu.Lock()
				known[v.SHA256] = stored{v.Blob, v.Offset}
				knownMu.Unlock()
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

// stored is where bytes already are: their blob, or the pack and offset.
type stored struct {
	blob   string
	offset int64
}

// copier stores a pass's objects: small ones in packs, the others as
// blobs of their own; lookup finds bytes already stored.
type copier struct {
	blobs  *bucketobj.BlobWriter
	packs  *bucketobj.PackWriter
	lookup func(sha256hex string) (stored, bool)
}

// copyAll copies the changed objects, Concurrency at a time. An object
// deleted since the listing is recorded deleted if it was live; one that
// fails fails the page: nothing of it is recorded, the next pass does it
// again (blobs already stored are found, not uploaded twice). The
// versions are returned once every pack holding one of them is stored.
func (e *Engine) copyAll(ctx context.Context, src Source, c *copier, objs []objstore.BucketObject, res *Result) ([]bucketobj.Version, error) {
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
		out      []*bucketobj.Version
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(n, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range jobs {
				v, read, up, err := e.copyOne(ctx, src, c, o)
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
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr == nil {
		firstErr = c.packs.Flush(ctx)
	}
	if firstErr != nil {
		c.packs.Discard()
		return nil, firstErr
	}
	vs := make([]bucketobj.Version, 0, len(out))
	for _, v := range out {
		if v.Blob == "" {
			return nil, fmt.Errorf("bucket pass of %s: %q has no stored copy after its page (a bug)", src.Name, v.Key)
		}
		vs = append(vs, *v)
	}
	return vs, nil
}

// copyOne copies one object; an object that changes while it is read is
// read again (up to three times). An object of at most
// bucketobj.MaxPacked bytes is read whole into memory and goes into a
// pack, a bigger one streams through BlobWriter.
func (e *Engine) copyOne(ctx context.Context, src Source, c *copier, o objstore.BucketObject) (*bucketobj.Version, int64, int64, error) {
	var err error
	for range 3 {
		var rc interface {
			Read([]byte) (int, error)
			Close() error
		}
		var info objstore.BucketObject
		rc, info, err = src.Bucket.Get(ctx, o.Key)
		if err != nil {
			return nil, 0, 0, err
		}
		var v *bucketobj.Version
		var up int64
		if info.Size >= 0 && info.Size <= bucketobj.MaxPacked {
			v, up, err = c.packed(ctx, rc, info)
		} else {
			var saved bucketobj.Saved
			saved, err = c.blobs.Save(ctx, rc, info.Size)
			v = &bucketobj.Version{Key: o.Key, Time: info.Modified.UTC(), Size: saved.Size, ETag: info.ETag,
				MD5: saved.MD5, SHA256: saved.SHA256, Blob: saved.Blob}
			up = saved.Uploaded
		}
		rc.Close()
		if errors.Is(err, bucketobj.ErrChanged) {
			continue
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("copy %q from %s: %w", o.Key, src.Bucket, err)
		}
		if md5RE.MatchString(info.ETag) && info.ETag != v.MD5 {
			return nil, 0, 0, fmt.Errorf("copy %q from %s: read bytes with md5 %s, but the bucket's ETag is %s: the object was damaged on the way; the next pass copies it again", o.Key, src.Bucket, v.MD5, info.ETag)
		}
		return v, v.Size, up, nil
	}
	return nil, 0, 0, fmt.Errorf("copy %q from %s: %w three times; the next pass tries again", o.Key, src.Bucket, err)
}

var readPool = sync.Pool{New: func() any { b := make([]byte, 0, bucketobj.MaxPacked+1); return &b }}

// packed reads a small object whole and adds it to the pack being
// filled, unless its bytes are stored already.
func (c *copier) packed(ctx context.Context, r io.Reader, info objstore.BucketObject) (*bucketobj.Version, int64, error) {
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf := (*bp)[:info.Size+1]
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
	case err != nil:
		return nil, 0, err
	}
	if int64(n) != info.Size {
		return nil, 0, fmt.Errorf("%w: read %d bytes of %d", bucketobj.ErrChanged, n, info.Size)
	}
	data := buf[:n]
	sh, md := sha256.Sum256(data), md5.Sum(data)
	v := &bucketobj.Version{Key: info.Key, Time: info.Modified.UTC(), Size: info.Size, ETag: info.ETag,
		MD5: hex.EncodeToString(md[:]), SHA256: hex.EncodeToString(sh[:])}
	if k, ok := c.lookup(v.SHA256); ok {
		v.Blob, v.Offset = k.blob, k.offset
		return v, 0, nil
	}
	added, err := c.packs.Add(ctx, v, data)
	if err != nil {
		return nil, 0, err
	}
	if !added {
		return v, 0, nil
	}
	return v, int64(n), nil
}
