package bucketobj

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
)

// Segment is one record of a source's version index,
// buckets/<source>/index/<pass>-<seq>.json: the versions one part of a pass
// saw, in key order. A pass lists the bucket in key order and writes a
// segment for each page in which something changed, once every blob it
// names is in the store; its last segment is Final. A segment that is not
// Final and is the newest is where an interrupted pass resumes: after
// Through.
type Segment struct {
	Version int    `json:"version"`
	Source  string `json:"source"`
	// Bucket names what was backed up (s3://BUCKET at ENDPOINT), Prefix the
	// part of it.
	Bucket string `json:"bucket,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Pass is when the pass started; Seq numbers its segments from 0.
	Pass time.Time `json:"pass"`
	Seq  int       `json:"seq"`
	// Through is the last key the pass had dealt with when it wrote this
	// segment: every key up to it is recorded.
	Through string `json:"through,omitempty"`
	Final   bool   `json:"final,omitempty"`
	// Base marks a segment retention wrote: it holds every version kept,
	// and the segments before it are superseded (and deleted after it).
	Base bool `json:"base,omitempty"`
	// Aside marks versions a restore saved before it overwrote or deleted
	// them in the original bucket.
	Aside   bool      `json:"aside,omitempty"`
	Entries []Version `json:"entries"`
}

// Version is what one key held from Time on: an object's bytes (the blob
// named by SHA256) or, Deleted, nothing.
type Version struct {
	Key string `json:"key"`
	// Time is the object's last-modified time at the source, or for a
	// deletion when the pass that found the key gone started.
	Time    time.Time `json:"time"`
	Deleted bool      `json:"deleted,omitempty"`
	Size    int64     `json:"size,omitempty"`
	// ETag is the source's; MD5 and SHA256 are of the bytes (hex).
	ETag   string `json:"etag,omitempty"`
	MD5    string `json:"md5,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Blob is the key under buckets/<source>/ of the object that holds
	// the bytes: their own blob (blobs/ab/<sha256>, .age when encrypted)
	// or a pack (blobs/packs/ab/<sha256 of the pack>), where they start at
	// Offset of the decrypted pack.
	Blob   string `json:"blob,omitempty"`
	Offset int64  `json:"offset,omitempty"`
}

// maxPackOffset bounds where an object can start in a pack (a pack is
// stored once it holds DefaultPackSize bytes; this leaves room for a
// writer configured with bigger packs).
const maxPackOffset = 1 << 30

// MaxKeyBytes is S3's limit on a key's length.
const MaxKeyBytes = 1024

var (
	sourceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hexRE    = regexp.MustCompile(`^[0-9a-f]+$`)
	segRE    = regexp.MustCompile(`^(\d{20})-(\d{6})\.json$`)
)

// ValidSource reports whether name can name a source (buckets/<name>/).
func ValidSource(name string) error {
	if !sourceRE.MatchString(name) {
		return fmt.Errorf("bucket source name %q: use lower-case letters, digits and '-' (at most 63)", name)
	}
	return nil
}

// Dir is the source's directory in the store.
func Dir(source string) string { return "buckets/" + source + "/" }

// BlobKey is where the blob of bytes with this sha256 is, under Dir.
func BlobKey(sha256hex string, encrypted bool) string {
	k := "blobs/" + sha256hex[:2] + "/" + sha256hex
	if encrypted {
		k += ".age"
	}
	return k
}

// SegmentKey is the index segment's key under Dir: the pass's start in
// unix nanoseconds and the sequence number, so that keys sort in the
// order segments were written.
func SegmentKey(pass time.Time, seq int) string {
	return fmt.Sprintf("index/%020d-%06d.json", pass.UnixNano(), seq)
}

func parseSegmentKey(key string) (int64, int, bool) {
	m := segRE.FindStringSubmatch(path.Base(key))
	if m == nil || !strings.HasPrefix(key, "index/") {
		return 0, 0, false
	}
	ns, err1 := strconv.ParseInt(m[1], 10, 64)
	seq, err2 := strconv.Atoi(m[2])
	return ns, seq, err1 == nil && err2 == nil
}

// Marshal encodes a segment for the store.
func (s *Segment) Marshal() ([]byte, error) {
	if s.Entries == nil {
		s.Entries = []Version{}
	}
	return json.Marshal(s)
}

// ParseSegment reads the segment stored under key (relative to the
// source's Dir) and checks it describes what key and source say. An error
// wraps store.ErrBadRecord.
func ParseSegment(data []byte, source, key string) (*Segment, error) {
	var s Segment
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, drstore.BadRecord(key, err)
	}
	if s.Version == 0 {
		return nil, drstore.BadRecord(key, errors.New("no version"))
	}
	if err := drstore.CheckVersion("bucket index segment "+key, s.Version); err != nil {
		return nil, err
	}
	if s.Source != source {
		return nil, drstore.BadRecord(key, fmt.Errorf("belongs to source %q, not %q", s.Source, source))
	}
	ns, seq, ok := parseSegmentKey(key)
	if !ok || s.Pass.UnixNano() != ns || s.Seq != seq {
		return nil, drstore.BadRecord(key, fmt.Errorf("pass %s seq %d is not what its name says", s.Pass.Format(time.RFC3339Nano), s.Seq))
	}
	for i, v := range s.Entries {
		if err := v.check(); err != nil {
			return nil, drstore.BadRecord(key, fmt.Errorf("entry %d: %w", i, err))
		}
		if i > 0 && !s.Base && !s.Aside && s.Entries[i-1].Key >= v.Key {
			return nil, drstore.BadRecord(key, fmt.Errorf("entry %d: keys out of order", i))
		}
	}
	return &s, nil
}

func (v Version) check() error {
	switch {
	case v.Key == "" || len(v.Key) > MaxKeyBytes || !utf8.ValidString(v.Key):
		return fmt.Errorf("key %q is not an S3 key", v.Key)
	case v.Time.IsZero():
		return fmt.Errorf("key %q: no time", v.Key)
	case v.Deleted:
		if v.Blob != "" || v.Size != 0 {
			return fmt.Errorf("key %q: a deletion names bytes", v.Key)
		}
		return nil
	case v.Size < 0:
		return fmt.Errorf("key %q: negative size", v.Key)
	case len(v.SHA256) != 64 || !hexRE.MatchString(v.SHA256):
		return fmt.Errorf("key %q: bad sha256 %q", v.Key, v.SHA256)
	case v.MD5 != "" && (len(v.MD5) != 32 || !hexRE.MatchString(v.MD5)):
		return fmt.Errorf("key %q: bad md5 %q", v.Key, v.MD5)
	case IsPack(v.Blob):
		if v.Offset < 0 || v.Offset > maxPackOffset || v.Size > MaxPacked {
			return fmt.Errorf("key %q: %d bytes at offset %d of pack %q: not where a pack holds an object", v.Key, v.Size, v.Offset, v.Blob)
		}
	case v.Offset != 0:
		return fmt.Errorf("key %q: an offset (%d) in a blob of its own", v.Key, v.Offset)
	case v.Blob != BlobKey(v.SHA256, false) && v.Blob != BlobKey(v.SHA256, true):
		return fmt.Errorf("key %q: blob %q is not the one of sha256 %s", v.Key, v.Blob, v.SHA256)
	}
	return nil
}
