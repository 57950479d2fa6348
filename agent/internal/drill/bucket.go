package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
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
	p.step("restore", true, func() (string, error) {
		dir := filepath.Join(p.scratch, "objects")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", err
		}
		encrypted := false
		for _, v := range picked {
			encrypted = encrypted || strings.HasSuffix(v.Blob, ".age")
		}
		id, err := e.identity(encrypted, "bucket source "+req.Source+"'s copy")
		if err != nil {
			return "", err
		}
		var want int64
		for i, v := range picked {
			if i%10 == 0 {
				p.progress("restore", fmt.Sprintf("%d of %d objects", i, len(picked)))
			}
			sum := sha256.Sum256([]byte(v.Key))
			written, err := restoreObject(ctx, e, req.Source, v, filepath.Join(dir, hex.EncodeToString(sum[:])), id)
			if err != nil {
				return "", err
			}
			r.FilesRestored++
			r.BytesRestored += written
			want += v.Size
		}
		if r.BytesRestored != want {
			return "", fmt.Errorf("bucket source %s: restored %d bytes of the sample, the index records %d", req.Source, r.BytesRestored, want)
		}
		return fmt.Sprintf("%d of %d objects read back (%d bytes), each matching its recorded sha256", len(picked), len(state), r.BytesRestored), nil
	})
	return p.finish(keep), nil
}

// restoreObject writes one version's checked bytes to path; the file
// appears only once they matched.
func restoreObject(ctx context.Context, e *Engine, source string, v bucketobj.Version, path string, id age.Identity) (int64, error) {
	rc, err := bucketobj.Open(ctx, e.Store, source, v, id)
	if err != nil {
		return 0, fmt.Errorf("%s%s: %w", bucketobj.Dir(source), v.Blob, err)
	}
	defer rc.Close()
	f, err := durable.Create(path, 0o600, durable.WithHash(nil), durable.NoSync())
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	n, err := io.Copy(f, rc)
	if err != nil {
		return 0, fmt.Errorf("%s%s: %w", bucketobj.Dir(source), v.Blob, err)
	}
	return n, f.Commit()
}
