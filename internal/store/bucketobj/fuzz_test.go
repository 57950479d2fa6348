package bucketobj

import (
	"errors"
	"testing"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
)

// A segment comes from the store: ParseSegment returns one that says what
// its key says, or an error marking it unusable; it never panics, and what
// it accepts encodes and parses back the same.
func FuzzParseSegment(f *testing.F) {
	const key = "index/01767225600000000000-000000.json"
	f.Add([]byte(`{"version":1,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"final":true,"entries":[{"key":"a b/ü/../x","time":"2026-01-01T00:00:00Z","size":3,"md5":"900150983cd24fb0d6963f7d28e17f72","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","blob":"blobs/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.age"},{"key":"b","time":"2026-01-01T00:00:00Z","deleted":true}]}`))
	f.Add([]byte(`{"version":2,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[]}`))
	f.Add([]byte(`{"version":1,"source":"other","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[]}`))
	f.Add([]byte(`{"version":1,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[{"key":"b","time":"2026-01-01T00:00:00Z","deleted":true},{"key":"a","time":"2026-01-01T00:00:00Z","deleted":true}]}`))
	f.Add([]byte(`{"version":1,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[{"key":"a","time":"2026-01-01T00:00:00Z","sha256":"00","blob":"blobs/../x"}]}`))
	f.Add([]byte(`{"version":1,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[{"key":"p","time":"2026-01-01T00:00:00Z","size":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","blob":"blobs/packs/0f/0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100.age","offset":4096}]}`))
	f.Add([]byte(`{"version":1,"source":"app-media","pass":"2026-01-01T00:00:00Z","seq":0,"entries":[{"key":"p","time":"2026-01-01T00:00:00Z","size":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","blob":"blobs/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","offset":-1}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":1`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSegment(data, "app-media", key)
		if err != nil {
			if !errors.Is(err, drstore.ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if s.Source != "app-media" || SegmentKey(s.Pass, s.Seq) != key {
			t.Fatalf("accepted a segment of %s %s for %s", s.Source, SegmentKey(s.Pass, s.Seq), key)
		}
		for _, v := range s.Entries {
			if !v.Deleted && (v.Blob == "" || len(v.SHA256) != 64) {
				t.Fatalf("accepted a version without its blob: %+v", v)
			}
			if v.Offset < 0 || (v.Offset != 0 && !IsPack(v.Blob)) || (IsPack(v.Blob) && v.Size > MaxPacked) {
				t.Fatalf("accepted bytes where no stored object has them: %+v", v)
			}
		}
		again, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSegment(again, "app-media", key); err != nil {
			t.Fatalf("a segment it accepted does not parse again: %v", err)
		}
	})
}
