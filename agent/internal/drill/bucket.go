package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// DefaultSample is how many objects a bucket part restores.
const DefaultSample = 100

// BucketPart names the bucket source and the time to restore it as of.
type BucketPart struct {
	Source string
	// At: zero for the newest versions recorded.
	At time.Time
	// Sample is how many objects to restore (0: DefaultSample, -1: all).
	Sample int64
}

// sample picks n of vs spread evenly over them (all when n < 0 or n >=
// len(vs)), in their order.
func sample(vs []bucketobj.Version, n int64) []bucketobj.Version {
	if n < 0 || n >= int64(len(vs)) {
		return vs
	}
	out := make([]bucketobj.Version, 0, n)
	for i := int64(0); i < n; i++ {
		out = append(out, vs[i*int64(len(vs))/n])
	}
	return out
}

// passAt is the start of the newest finished pass no later than at (zero:
// the newest finished pass); zero when there is none.
func passAt(idx *bucketobj.Index, at time.Time) time.Time {
	var t time.Time
	for _, s := range idx.Segments {
		if s.Final && (at.IsZero() || !s.Pass.After(at)) && s.Pass.After(t) {
			t = s.Pass
		}
	}
	return t
}

// RunBucket rehearses a bucket source's restore: the index as of At,
// every object's copy present, and a sample read back (decrypted and
// checksummed) into scratch.
func (e *Engine) RunBucket(ctx context.Context, drillID string, req BucketPart, keep bool, progress Progress) (*Result, error) {
	if req.Sample < -1 {
		return nil, fmt.Errorf("%w: sample %d: want a count, 0 for %d or -1 for all", ErrInvalid, req.Sample, DefaultSample)
	}
	if err := check(drillID, LayerBucket, req.Source); err != nil {
		return nil, err
	}
	if err := bucketobj.ValidSource(req.Source); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	idx, err := bucketobj.Load(ctx, e.Store, req.Source)
	if err != nil {
		return nil, err
	}
	if len(idx.Segments) == 0 {
		return nil, fmt.Errorf("%w: bucket source %s has no copy in the store (%s): has a pass run?", ErrNothing, req.Source, bucketobj.Dir(req.Source))
	}
	p, err := e.start(drillID, LayerBucket, req.Source, progress)
	if err != nil {
		return nil, err
	}
	r := p.res
	r.RecoveryPoint = passAt(idx, req.At)
	if r.RecoveryPoint.IsZero() && !req.At.IsZero() {
		r.RecoveryPoint = req.At
	}
	r.Facts["source"] = req.Source
	if s := idx.Segments[len(idx.Segments)-1]; s.Bucket != "" {
		r.Facts["bucket"] = s.Bucket
	}
	if !r.RecoveryPoint.IsZero() {
		r.Facts["pass"] = r.RecoveryPoint.UTC().Format(time.RFC3339Nano)
	}
	if !req.At.IsZero() {
		r.Facts["at"] = req.At.UTC().Format(time.RFC3339Nano)
	}
	var state []bucketobj.Version
	p.step("index", true, func() (string, error) {
		if r.RecoveryPoint.IsZero() {
			return "", fmt.Errorf("bucket source %s: no finished pass in %sindex/", req.Source, bucketobj.Dir(req.Source))
		}
		state = idx.At(req.At, "")
		var bytes int64
		for _, v := range state {
			bytes += v.Size
		}
		r.Counts["objects"] = int64(len(state))
		r.Facts["objects"], r.Facts["bytes"] = strconv.Itoa(len(state)), strconv.FormatInt(bytes, 10)
		r.Facts["segments"] = strconv.Itoa(len(idx.Segments))
		if len(idx.Skipped) > 0 {
			return "", fmt.Errorf("bucket index of %s: %d segments unreadable, first %s: %s", req.Source, len(idx.Skipped), idx.Skipped[0].Key, idx.Skipped[0].Reason)
		}
		// Every object of that time must have its copy in the store.
		objs, err := e.Store.List(ctx, bucketobj.Dir(req.Source)+"blobs/")
		if err != nil {
			return "", fmt.Errorf("list %sblobs/: %w", bucketobj.Dir(req.Source), err)
		}
		have := make(map[string]bool, len(objs))
		for _, o := range objs {
			have[strings.TrimPrefix(o.Key, bucketobj.Dir(req.Source))] = true
		}
		var missing []string
		for _, v := range state {
			if !have[v.Blob] {
				missing = append(missing, fmt.Sprintf("%q (%s%s)", v.Key, bucketobj.Dir(req.Source), v.Blob))
			}
		}
		if len(missing) > 0 {
			return "", fmt.Errorf("bucket source %s: %d objects have no copy in the store: %s", req.Source, len(missing), strings.Join(missing[:min(5, len(missing))], ", "))
		}
		return fmt.Sprintf("%d objects, %d bytes, every copy in the store", len(state), bytes), nil
	})
	if !r.OK {
		return p.finish(keep), nil
	}
	n := req.Sample
	if n == 0 {
		n = DefaultSample
	}
	picked := sample(state, n)
	r.Counts["sampled"] = int64(len(picked))
	if e.Identity == nil && e.Unattended && slices.ContainsFunc(picked, func(v bucketobj.Version) bool { return strings.HasSuffix(v.Blob, ".age") }) {
		r.NotRun = keyless("bucket source "+req.Source+"'s copy", "every object's copy was found in the store")
		return p.finish(keep), nil
	}
	if src, ok := e.Buckets[req.Source]; ok {
		e.restoreIntoBucket(ctx, p, drillID, req.Source, src, picked, len(state), keep)
		return p.finish(keep), nil
	}
	r.Facts["scratch"] = "directory (this agent does not run bucket source " + req.Source + ", so it has no credentials for its endpoint)"
	e.restoreIntoDir(ctx, p, req.Source, picked, len(state))
	return p.finish(keep), nil
}

// restoreIntoDir restores the sample into the part's scratch directory,
// each file appearing only once its bytes matched.
func (e *Engine) restoreIntoDir(ctx context.Context, p *part, source string, picked []bucketobj.Version, total int) {
	r := p.res
	p.step("restore", true, func() (string, error) {
		dir := filepath.Join(p.scratch, "objects")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", err
		}
		encrypted := false
		for _, v := range picked {
			encrypted = encrypted || strings.HasSuffix(v.Blob, ".age")
		}
		id, err := e.identity(encrypted, "bucket source "+source+"'s copy")
		if err != nil {
			return "", err
		}
		var want int64
		for _, v := range picked {
			want += v.Size
		}
		// A pack holding several of the sample is read once.
		var mu sync.Mutex
		err = bucketobj.ReadEach(ctx, e.Store, source, picked, id, 4, func(v bucketobj.Version, rd io.Reader) error {
			sum := sha256.Sum256([]byte(v.Key))
			written, err := restoreObject(rd, filepath.Join(dir, hex.EncodeToString(sum[:])))
			if err != nil {
				return fmt.Errorf("%s%s: %w", bucketobj.Dir(source), v.Blob, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if r.FilesRestored%10 == 0 {
				p.progress("restore", fmt.Sprintf("%d of %d objects", r.FilesRestored, len(picked)))
			}
			r.FilesRestored++
			r.BytesRestored += written
			return nil
		})
		if err != nil {
			return "", err
		}
		if r.BytesRestored != want {
			return "", fmt.Errorf("bucket source %s: restored %d bytes of the sample, the index records %d", source, r.BytesRestored, want)
		}
		return fmt.Sprintf("%d of %d objects read back (%d bytes), each matching its recorded sha256", len(picked), total, r.BytesRestored), nil
	})
}

// restoreObject writes one version's bytes (read from r, which fails at
// its end when they are not the recorded ones) to path; the file appears
// only once they matched.
func restoreObject(r io.Reader, path string) (int64, error) {
	f, err := durable.Create(path, 0o600, durable.WithHash(nil), durable.NoSync())
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	n, err := io.Copy(f, r)
	if err != nil {
		return 0, err
	}
	return n, f.Commit()
}

// ScratchBucketPrefix starts the name of every scratch bucket a drill
// makes; scratchBucketMark is in it while its part runs.
const (
	ScratchBucketPrefix = "dr-drill-"
	scratchBucketMark   = ".dr-drill-running"
)

var bucketNameRE = regexp.MustCompile(`[^a-z0-9-]+`)

// scratchTag ties a scratch bucket to the node and source that made it,
// so that an agent sweeps only its own.
func scratchTag(node, source string) string {
	sum := sha256.Sum256([]byte(node + "/" + source))
	return hex.EncodeToString(sum[:4])
}

// ScratchBucketName is the bucket the drill's part for source restores
// into on node: dr-drill-<drill id>-<tag>, within S3's 63 characters.
func ScratchBucketName(drillID, node, source string) string {
	id := bucketNameRE.ReplaceAllString(strings.ToLower(strings.TrimPrefix(drillID, "drill-")), "-")
	tag := "-" + scratchTag(node, source)
	if max := 63 - len(ScratchBucketPrefix) - len(tag); len(id) > max {
		id = id[:max]
	}
	return ScratchBucketPrefix + strings.Trim(id, "-") + tag
}

// restoreIntoBucket restores the sample into a scratch bucket beside the
// source's bucket (same endpoint and credentials), checks each object's
// sha256 as the scratch bucket serves it, and removes the bucket (unless
// keep). Credentials that may not create buckets fall back to a scratch
// directory: a bucket in the backup store would be no better, its node
// credentials may not delete, so it could not be removed.
func (e *Engine) restoreIntoBucket(ctx context.Context, p *part, drillID, source string, src objstore.Config, picked []bucketobj.Version, total int, keep bool) {
	r := p.res
	name := ScratchBucketName(drillID, e.Node, source)
	cfg, err := objstore.SiblingBucket(src, name)
	var bucket objstore.Bucket
	if err == nil {
		bucket, err = objstore.OpenBucket(cfg)
	}
	if err != nil {
		p.problem(fmt.Sprintf("scratch bucket %s: %v", name, err))
		return
	}
	made := false
	ok := p.step("make-bucket", false, func() (string, error) {
		err := objstore.MakeBucket(ctx, cfg)
		if errors.Is(err, objstore.ErrNoBucketCreate) {
			return fmt.Sprintf("%v: the sample goes to a scratch directory", err), nil
		}
		if err != nil {
			return "", err
		}
		made = true
		r.Facts["scratchBucket"] = name
		// Swept at agent start while marked; a kept bucket loses it.
		// Some stores (SeaweedFS) refuse the first writes into a bucket
		// just made for a moment: the mark is tried again.
		for try := 0; ; try++ {
			err := bucket.Put(ctx, scratchBucketMark, strings.NewReader(""), 0)
			if err == nil {
				break
			}
			if try == 20 {
				objstore.RemoveBucket(context.WithoutCancel(ctx), cfg)
				return "", fmt.Errorf("mark scratch bucket %s: %w", name, err)
			}
			select {
			case <-ctx.Done():
				objstore.RemoveBucket(context.WithoutCancel(ctx), cfg)
				return "", ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		return "made " + bucket.String(), nil
	})
	if !ok {
		return
	}
	if !made {
		r.Facts["scratch"] = "directory (the credentials of bucket source " + source + " may not create a scratch bucket)"
		e.restoreIntoDir(ctx, p, source, picked, total)
		return
	}
	r.Facts["scratch"] = "bucket " + bucket.String()
	defer func() {
		if keep {
			p.step("keep-bucket", false, func() (string, error) {
				if err := bucket.Delete(context.WithoutCancel(ctx), scratchBucketMark); err != nil {
					return "", err
				}
				return "kept " + bucket.String(), nil
			})
			return
		}
		p.step("remove-bucket", false, func() (string, error) {
			// The drill's own context may be gone (interrupted): the
			// bucket is removed all the same.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if err := objstore.RemoveBucket(rctx, cfg); err != nil {
				return "", err
			}
			return "removed " + bucket.String(), nil
		})
	}()
	encrypted := false
	for _, v := range picked {
		encrypted = encrypted || strings.HasSuffix(v.Blob, ".age")
	}
	id, err := e.identity(encrypted, "bucket source "+source+"'s copy")
	if err != nil {
		p.problem(err.Error())
		return
	}
	p.step("restore", true, func() (string, error) {
		var (
			want int64
			mu   sync.Mutex
		)
		err := bucketobj.ReadEach(ctx, e.Store, source, picked, id, 4, func(v bucketobj.Version, rd io.Reader) error {
			if err := bucket.Put(ctx, v.Key, rd, v.Size); err != nil {
				return fmt.Errorf("%q into %s: %w", v.Key, bucket, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if r.FilesRestored%10 == 0 {
				p.progress("restore", fmt.Sprintf("%d of %d objects into %s", r.FilesRestored, len(picked), name))
			}
			r.FilesRestored++
			r.BytesRestored += v.Size
			want += v.Size
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("bucket source %s: %w", source, err)
		}
		return fmt.Sprintf("%d of %d objects put into %s (%d bytes)", len(picked), total, bucket, want), nil
	})
	if !r.OK {
		return
	}
	p.step("verify", false, func() (string, error) {
		for _, v := range picked {
			rc, obj, err := bucket.Get(ctx, v.Key)
			if err != nil {
				return "", fmt.Errorf("%q in %s: %w", v.Key, bucket, err)
			}
			h := sha256.New()
			n, err := io.Copy(h, rc)
			rc.Close()
			if err != nil {
				return "", fmt.Errorf("%q in %s: %w", v.Key, bucket, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); n != v.Size || (v.SHA256 != "" && got != v.SHA256) {
				return "", fmt.Errorf("%q in %s: %d bytes with sha256 %s, the index records %d bytes, %s (etag %s)", v.Key, bucket, n, got, v.Size, v.SHA256, obj.ETag)
			}
		}
		return fmt.Sprintf("%d objects read back from %s, each matching its recorded sha256", len(picked), bucket), nil
	})
}

// SweepBuckets removes the scratch buckets this node's bucket parts left
// (an agent killed mid-part: still marked running), on each source's
// endpoint; it returns the buckets removed. Only this node's are touched
// (another agent's drill may be running), and kept ones stay.
func SweepBuckets(ctx context.Context, node string, sources map[string]objstore.Config) ([]string, error) {
	var removed []string
	var errs []error
	for source, src := range sources {
		names, err := objstore.ListBuckets(ctx, src, ScratchBucketPrefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("bucket source %s: %w", source, err))
			continue
		}
		for _, name := range names {
			if !strings.HasSuffix(name, "-"+scratchTag(node, source)) {
				continue
			}
			cfg, err := objstore.SiblingBucket(src, name)
			var b objstore.Bucket
			if err == nil {
				b, err = objstore.OpenBucket(cfg)
			}
			if err == nil {
				var rc io.ReadCloser
				rc, _, err = b.Get(ctx, scratchBucketMark)
				if errors.Is(err, objstore.ErrNotFound) {
					continue // kept (drill --keep)
				}
				if err == nil {
					rc.Close()
					err = objstore.RemoveBucket(ctx, cfg)
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("scratch bucket %s: %w", name, err))
				continue
			}
			removed = append(removed, name)
		}
	}
	return removed, errors.Join(errs...)
}
