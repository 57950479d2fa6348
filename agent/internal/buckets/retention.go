package buckets

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// blobGrace keeps unreferenced blobs this young: a restore may have
// stored one it is about to name in an aside segment.
const blobGrace = time.Hour

// Keep is what retention keeps of one key's versions (oldest first) with
// history from cutoff on: every version after cutoff, and the one in force
// at cutoff unless that is a deletion. So every time inside the window
// restores as it was, and the newest version of a live object is kept
// however old.
func Keep(vs []bucketobj.Version, cutoff time.Time) []bucketobj.Version {
	first := 0
	for i, v := range vs {
		if !v.Time.After(cutoff) {
			first = i
		}
	}
	if vs[first].Time.After(cutoff) {
		return vs
	}
	if vs[first].Deleted {
		first++
	}
	return vs[first:]
}

// Retain drops the source's history older than days: it writes a base
// segment with what is kept, then deletes the segments it supersedes and
// the blobs nothing names any more. It returns how many versions it
// dropped.
func (e *Engine) Retain(ctx context.Context, source string, days int) (int, error) {
	l := e.lock(source)
	l.Lock()
	defer l.Unlock()
	return e.retain(ctx, source, days)
}

func (e *Engine) retain(ctx context.Context, source string, days int) (int, error) {
	idx, err := bucketobj.Load(ctx, e.Store, source)
	if err != nil {
		return 0, err
	}
	if _, resuming := idx.Resume(); resuming {
		return 0, nil
	}
	now := e.now().UTC()
	cutoff := now.AddDate(0, 0, -days)
	var kept []bucketobj.Version
	dropped := 0
	for _, k := range idx.Keys() {
		vs := idx.Versions(k)
		keep := Keep(vs, cutoff)
		dropped += len(vs) - len(keep)
		kept = append(kept, keep...)
	}
	dir := e.Store.Sub(strings.TrimSuffix(bucketobj.Dir(source), "/"))
	if dropped > 0 {
		var bucket, prefix string
		if n := len(idx.Segments); n > 0 {
			bucket, prefix = idx.Segments[n-1].Bucket, idx.Segments[n-1].Prefix
		}
		// The base must sort after every segment it supersedes.
		at := now
		for _, s := range idx.Segments {
			if !s.Pass.Before(at) {
				at = s.Pass.Add(time.Microsecond)
			}
		}
		base := &bucketobj.Segment{Source: source, Bucket: bucket, Prefix: prefix, Pass: at, Final: true, Base: true, Entries: kept}
		if err := bucketobj.WriteSegment(ctx, e.Store, base); err != nil {
			return 0, fmt.Errorf("retention of %s: %w", source, err)
		}
		for _, s := range idx.Segments {
			idx.Superseded = append(idx.Superseded, bucketobj.SegmentKey(s.Pass, s.Seq))
		}
	}
	// A delete the store refuses (put/get-only node credentials, Object
	// Lock) leaves the object: a superseded segment is ignored by every
	// reader, an unnamed blob is never read. They are counted, logged once.
	refused, why := 0, ""
	remove := func(key string) error {
		err := dir.Delete(ctx, key)
		if objstore.Refused(err) {
			refused++
			if why == "" {
				why = err.Error()
			}
			return nil
		}
		return err
	}
	defer func() {
		if refused > 0 && e.Log != nil {
			e.Log.Info("bucket retention left objects the store refused to delete; they are not read, and a delete-capable prune removes them", "source", source, "objects", refused, "first", why)
		}
	}()
	for _, key := range idx.Superseded {
		if err := remove(key); err != nil {
			return dropped, fmt.Errorf("retention of %s: %w", source, err)
		}
	}
	named := map[string]bool{}
	for _, v := range kept {
		named[v.Blob] = true
	}
	blobs, err := dir.List(ctx, "blobs/")
	if err != nil {
		return dropped, fmt.Errorf("retention of %s: %w", source, err)
	}
	for _, b := range blobs {
		if !named[b.Key] && time.Since(b.Modified) > e.grace() {
			if err := remove(b.Key); err != nil {
				return dropped, fmt.Errorf("retention of %s: %w", source, err)
			}
		}
	}
	return dropped, nil
}

func (e *Engine) grace() time.Duration {
	if e.BlobGrace != 0 {
		return e.BlobGrace
	}
	return blobGrace
}
