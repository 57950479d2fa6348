package walobj

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// Objects come from the store, which a node cannot be sure of: Decode must
// refuse anything that is not what was shipped, never panic, and never
// report success for bytes whose checksum does not match. Encrypted
// objects (drwal3, seeds under testdata too) decode with the test key;
// what cannot be decrypted with it is refused as such (ErrKey).
func FuzzDecode(f *testing.F) {
	enc := newEncoder(f)
	id := testIdentity(f, testKey)
	for _, raw := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("wal record "), 5000)} {
		for _, e := range []*Encoder{enc, encryptingEncoder(f)} {
			var obj bytes.Buffer
			if err := e.Encode(&obj, raw); err != nil {
				f.Fatal(err)
			}
			f.Add(obj.Bytes())
		}
	}
	f.Add([]byte("drwal2 00000000000000000001 0000000000000000\n"))
	f.Add([]byte("drwal1 1 " + string(bytes.Repeat([]byte("0"), 64)) + "\n"))
	f.Add([]byte("not a header"))
	f.Fuzz(func(t *testing.T, obj []byte) {
		var out bytes.Buffer
		n, err := Decode(&out, bytes.NewReader(obj), id)
		size, encrypted := EncryptedSize(ObjectHeader(obj))
		if err == nil && encrypted && size != n {
			t.Fatalf("an encrypted object decoded to %d bytes, its header says %d", n, size)
		}
		if err == nil && encrypted != bytes.HasPrefix(obj, []byte(magicAge+" ")) {
			t.Fatalf("EncryptedSize says encrypted=%v of a decoded object starting %q", encrypted, obj[:min(len(obj), 10)])
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrKey) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrKey", err)
			}
			return
		}
		if n != int64(out.Len()) {
			t.Fatalf("Decode says %d bytes, wrote %d", n, out.Len())
		}
		// What decoded cleanly encodes to an object that decodes to the same.
		var again bytes.Buffer
		if err := enc.Encode(&again, out.Bytes()); err != nil {
			t.Fatal(err)
		}
		var back bytes.Buffer
		if _, err := Decode(&back, &again, nil); err != nil || !bytes.Equal(back.Bytes(), out.Bytes()) {
			t.Fatalf("re-encoded object does not round-trip: %v", err)
		}
	})
}

// Spool and archive names come from directories anyone on the node can
// write to: classifying and ordering them must not panic.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"000000010000000000000003", "00000002.history", "000000010000000000000003.00000028.backup", "000000010000000000000003.partial", "x", ""} {
		f.Add(s, "000000010000000000000001")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		k := Classify(a)
		if k == Segment || k == History || k == Backup || k == Partial {
			_ = Timeline(a)
		}
		_ = Gaps([]string{a, b}, 0)
		_ = Gaps([]string{a, b}, 64<<20)
		_, _ = SegmentRange(a, b, 1<<30)
		// Continuity from a over the listing: what it names is a segment
		// (or a itself, when a is none),
		// and a gap lies after the newest segment it reached.
		newest, missing := Continuity([]string{a, b, "000000010000000000000002"}, a, 0)
		for _, n := range []string{newest, missing} {
			if n != "" && n != a && Classify(n) != Segment {
				t.Fatalf("Continuity from %q names %q, not a segment", a, n)
			}
		}
		if newest != "" && missing != "" && Timeline(newest) == Timeline(missing) && missing <= newest {
			t.Fatalf("Continuity from %q: gap %s before the newest %s", a, missing, newest)
		}
		_, _ = SegmentOfLSN(1, a, 0)
		_, _ = Continuity([]string{a, b}, a, 64<<20)
	})
}

// A segment's first page comes from the spool, which anyone who can write
// there fills: the header parser must refuse what is not a header and
// never panic, and what it accepts must be self-consistent.
func FuzzParsePageHeader(f *testing.F) {
	for _, p := range []string{"testdata/pg15-16mb-000000010000000000000001.page", "testdata/pg15-64mb-000000010000000000000001.page"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:LongPageHeaderSize], "000000010000000000000001")
	}
	f.Add([]byte("not a segment"), "000000010000000000000001.partial")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		h, err := ParsePageHeader(data)
		if err != nil {
			if !errors.Is(err, ErrNotWAL) {
				t.Fatalf("error %v does not wrap ErrNotWAL", err)
			}
			return
		}
		if h.SegmentSize&(h.SegmentSize-1) != 0 || h.PageAddr%uint64(h.SegmentSize) != 0 {
			t.Fatalf("accepted an inconsistent header %+v", h)
		}
		if err := h.CheckName(name); err == nil {
			// The name it matches is the one it computes.
			if got := SegmentOf(h.Timeline, h.PageAddr, h.SegmentSize); got != name[:24] {
				t.Fatalf("header %+v matches %s but is segment %s", h, name, got)
			}
		}
	})
}
