package bucketobj

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// maxSegmentBytes bounds what a segment read may take in memory: a base
// segment of a million versions is ~300 MB.
const maxSegmentBytes = 1 << 30

// Index is a source's version index as read from the store.
type Index struct {
	Source string
	// Segments are the segments in force, oldest first (from the newest
	// Base on).
	Segments []*Segment
	// Superseded are keys of segments a Base replaced (retention deletes
	// them).
	Superseded []string
	// Skipped are segments that could not be used.
	Skipped []drstore.Skipped
	byKey   map[string][]Version
}

// Load reads the index of source from st (the cluster's directory of the
// store).
func Load(ctx context.Context, st objstore.Store, source string) (*Index, error) {
	if err := ValidSource(source); err != nil {
		return nil, err
	}
	dir := st.Sub(strings.TrimSuffix(Dir(source), "/"))
	objs, err := dir.List(ctx, "index/")
	if err != nil {
		return nil, fmt.Errorf("list bucket index of %s: %w", source, err)
	}
	var keys []string
	for _, o := range objs {
		if _, _, ok := parseSegmentKey(o.Key); ok {
			keys = append(keys, o.Key)
		}
	}
	sort.Strings(keys)
	segs, skipped, err := drstore.ReadEach(keys, func(key string) (*Segment, error) {
		rc, err := dir.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, maxSegmentBytes))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		return ParseSegment(data, source, key)
	}, func(err error) bool { return errors.Is(err, objstore.ErrNotFound) })
	if err != nil {
		return nil, fmt.Errorf("read bucket index of %s: %w", source, err)
	}
	idx := &Index{Source: source, Skipped: skipped}
	for _, s := range segs {
		if s.Base {
			for _, old := range idx.Segments {
				idx.Superseded = append(idx.Superseded, SegmentKey(old.Pass, old.Seq))
			}
			idx.Segments = nil
		}
		idx.Segments = append(idx.Segments, s)
	}
	idx.build()
	return idx, nil
}

// FromSegments is the index these segments (oldest first) make.
func FromSegments(source string, segs []*Segment) *Index {
	idx := &Index{Source: source, Segments: segs}
	idx.build()
	return idx
}

func (idx *Index) build() {
	idx.byKey = map[string][]Version{}
	for _, s := range idx.Segments {
		for _, v := range s.Entries {
			idx.byKey[v.Key] = append(idx.byKey[v.Key], v)
		}
	}
}

// Versions are the versions of key, in the order they were recorded.
func (idx *Index) Versions(key string) []Version { return idx.byKey[key] }

// Keys are every key the index has a version of, sorted.
func (idx *Index) Keys() []string {
	keys := make([]string, 0, len(idx.byKey))
	for k := range idx.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// At is the bucket as it was at t, under prefix: each key's newest
// version no later than t that is not a deletion, sorted by key. A zero t
// is now (the newest versions).
func (idx *Index) At(t time.Time, prefix string) []Version {
	var out []Version
	for _, k := range idx.Keys() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if v, ok := versionAt(idx.byKey[k], t); ok && !v.Deleted {
			out = append(out, v)
		}
	}
	return out
}

func versionAt(vs []Version, t time.Time) (Version, bool) {
	for i := len(vs) - 1; i >= 0; i-- {
		if t.IsZero() || !vs[i].Time.After(t) {
			return vs[i], true
		}
	}
	return Version{}, false
}

// Latest is each key's newest version, deletions included.
func (idx *Index) Latest() map[string]Version {
	m := make(map[string]Version, len(idx.byKey))
	for k, vs := range idx.byKey {
		m[k] = vs[len(vs)-1]
	}
	return m
}

// Resume is where an interrupted pass stopped: the newest segment when it
// is a pass's and not Final.
func (idx *Index) Resume() (*Segment, bool) {
	for i := len(idx.Segments) - 1; i >= 0; i-- {
		s := idx.Segments[i]
		if s.Aside {
			continue
		}
		if s.Final || s.Base {
			return nil, false
		}
		return s, true
	}
	return nil, false
}

// LastPass is the start of the newest pass that finished (zero if none).
func (idx *Index) LastPass() time.Time {
	for i := len(idx.Segments) - 1; i >= 0; i-- {
		if s := idx.Segments[i]; s.Final {
			return s.Pass
		}
	}
	return time.Time{}
}

// Oldest is the time of the oldest version kept (zero if none).
func (idx *Index) Oldest() time.Time {
	var t time.Time
	for _, vs := range idx.byKey {
		if t.IsZero() || vs[0].Time.Before(t) {
			t = vs[0].Time
		}
	}
	return t
}

// WriteSegment puts a segment into the store, under its source's Dir.
func WriteSegment(ctx context.Context, st objstore.Store, s *Segment) error {
	s.Version = drstore.FormatVersion
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	key := Dir(s.Source) + SegmentKey(s.Pass, s.Seq)
	if _, err := st.Put(ctx, key, strings.NewReader(string(data)), int64(len(data))); err != nil {
		return fmt.Errorf("write bucket index segment %s: %w", key, err)
	}
	return nil
}
