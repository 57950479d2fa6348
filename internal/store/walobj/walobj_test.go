package walobj

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestClassifyAndGaps(t *testing.T) {
	for name, want := range map[string]Kind{
		"000000010000000000000003":                 Segment,
		"00000002.history":                         History,
		"000000010000000000000003.00000028.backup": Backup,
		"000000010000000000000003.partial":         Partial,
		".000000010000000000000003.tmp":            Unknown,
		"00000001000000000000000g":                 Unknown,
	} {
		if got := Classify(name); got != want {
			t.Errorf("Classify(%q) = %d, want %d", name, got, want)
		}
	}
	names := []string{
		"0000000100000000000000FE", "0000000100000000000000FF", // log id 0 ends at FF
		"000000010000000100000000", "000000010000000100000002", // 01/01 missing
		"00000002.history", "000000020000000100000005",
	}
	if got := fmt.Sprint(Gaps(names, 0)); got != "[000000010000000100000001]" {
		t.Errorf("Gaps = %s", got)
	}
}

func TestEncodeDecodeRefusesCorruption(t *testing.T) {
	enc := newEncoder(t)
	raw := bytes.Repeat([]byte("wal record "), 100000)
	var obj bytes.Buffer
	if err := enc.Encode(&obj, raw); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Decode(&out, bytes.NewReader(obj.Bytes()), nil); err != nil || !bytes.Equal(out.Bytes(), raw) {
		t.Fatalf("round trip: %v", err)
	}
	// One byte flipped in the compressed body, then a forged header.
	bad := bytes.Clone(obj.Bytes())
	bad[len(bad)/2] ^= 0xff
	if _, err := Decode(io.Discard, bytes.NewReader(bad), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped byte: %v, want ErrCorrupt", err)
	}
	forged := bytes.Replace(obj.Bytes(), []byte(" 0"), []byte(" 1"), 1)
	if _, err := Decode(io.Discard, bytes.NewReader(forged), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong size in header: %v, want ErrCorrupt", err)
	}
	// The body decodes, but to other bytes than were shipped.
	header, body, _ := bytes.Cut(obj.Bytes(), []byte("\n"))
	sum := header[len(header)-16:]
	other := append(append(bytes.Clone(header[:len(header)-16]), bytes.Repeat([]byte("0"), 16)...), '\n')
	if bytes.Equal(sum, []byte("0000000000000000")) {
		t.Fatal("test data hashes to zero")
	}
	if _, err := Decode(io.Discard, bytes.NewReader(append(other, body...)), nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "xxh64") {
		t.Errorf("wrong checksum in header: %v, want ErrCorrupt naming xxh64", err)
	}
}

// A segment is compressed as frames side by side: what comes back is the
// segment, whatever its size; a byte flipped in a later frame is refused;
// and an object shipped as one frame (before frames) still decodes.
func TestEncodeDecodeInFrames(t *testing.T) {
	enc := newEncoder(t)
	raw := segment(t) // 16 MiB, half random, half zero: 8 frames
	for _, size := range []int{0, 1, frameSize, frameSize + 1, len(raw)} {
		var obj bytes.Buffer
		if err := enc.Encode(&obj, raw[:size]); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if n, err := Decode(&out, bytes.NewReader(obj.Bytes()), nil); err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), raw[:size]) {
			t.Fatalf("%d bytes: decoded %d bytes (equal %v): %v", size, n, bytes.Equal(out.Bytes(), raw[:size]), err)
		}
		if size == len(raw) {
			bad := bytes.Clone(obj.Bytes())
			bad[len(bad)*3/4] ^= 0xff
			if _, err := Decode(io.Discard, bytes.NewReader(bad), nil); !errors.Is(err, ErrCorrupt) {
				t.Errorf("byte flipped in a later frame: %v, want ErrCorrupt", err)
			}
		}
	}
	// Objects shipped before frames and xxh64: one frame, a sha256.
	old := func(sum [sha256.Size]byte) *bytes.Buffer {
		var old bytes.Buffer
		fmt.Fprintf(&old, "%s %020d %x\n", magicSHA256, len(raw), sum)
		zw, _ := zstd.NewWriter(&old, zstd.WithEncoderLevel(zstd.SpeedFastest))
		zw.Write(raw)
		zw.Close()
		return &old
	}
	var out bytes.Buffer
	if _, err := Decode(&out, old(sha256.Sum256(raw)), nil); err != nil || !bytes.Equal(out.Bytes(), raw) {
		t.Fatalf("one-frame sha256 object: %v", err)
	}
	if _, err := Decode(io.Discard, old(sha256.Sum256(raw[1:])), nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("sha256 object with a wrong sum: %v, want ErrCorrupt naming sha256", err)
	}
}

// A file read and compressed frame by frame comes back whole; one that is
// shorter or longer than its size said is refused.
func TestReadEncode(t *testing.T) {
	enc := newEncoder(t)
	raw := segment(t)
	var buf []byte
	for _, size := range []int{0, frameSize - 1, len(raw)} {
		var obj bytes.Buffer
		if err := enc.ReadEncode(&obj, bytes.NewReader(raw[:size]), int64(size), &buf); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		var out bytes.Buffer
		if _, err := Decode(&out, &obj, nil); err != nil || !bytes.Equal(out.Bytes(), raw[:size]) {
			t.Fatalf("%d bytes: decoded %d (equal %v): %v", size, out.Len(), bytes.Equal(out.Bytes(), raw[:size]), err)
		}
	}
	var obj bytes.Buffer
	if err := enc.ReadEncode(&obj, bytes.NewReader(raw[:len(raw)-1]), int64(len(raw)), &buf); err == nil || !strings.Contains(err.Error(), "shorter") || obj.Len() != 0 {
		t.Errorf("short file: %v, %d bytes written; want an error saying it is shorter, nothing written", err, obj.Len())
	}
	if err := enc.ReadEncode(&obj, bytes.NewReader(raw), int64(len(raw)-1), &buf); err == nil || !strings.Contains(err.Error(), "longer") || obj.Len() != 0 {
		t.Errorf("long file: %v, %d bytes written; want an error saying it is longer, nothing written", err, obj.Len())
	}
}

func newEncoder(t testing.TB) *Encoder {
	t.Helper()
	enc, err := NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// countingWriter counts what it is given and keeps none of it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// A corrupt object whose body decodes to far more than its header says (a
// few KiB of zstd RLE blocks, 128 KiB each decoded: what the fuzzer found)
// is refused once it passes the header's size, not after writing all of it
// where the fetch would put the file; so is a size no WAL file can have.
func TestDecodeStopsAtTheHeadersSize(t *testing.T) {
	body := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38} // frame, no content size, 128 KiB window
	for range 4000 {
		body = append(body, 0x02, 0x00, 0x10, 'x') // RLE block of 128 KiB
	}
	body = append(body, 0x03, 0x00, 0x10, 'x') // the last one
	obj := append([]byte("drwal2 00000000000000000010 0000000000000000\n"), body...)
	var w countingWriter
	_, err := Decode(&w, bytes.NewReader(obj), nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if w.n > 11 {
		t.Errorf("Decode wrote %d bytes of an object shipped as 10", w.n)
	}
	for _, size := range []string{"-0000000000000000001", "09223372036854775807"} {
		obj := append([]byte("drwal2 "+size+" 0000000000000000\n"), body...)
		w = countingWriter{}
		if _, err := Decode(&w, bytes.NewReader(obj), nil); !errors.Is(err, ErrCorrupt) || w.n != 0 {
			t.Errorf("size %s in the header: %v after %d bytes, want ErrCorrupt before any", size, err, w.n)
		}
	}
}

// Continuity follows the archive from a base backup's first segment: the
// first segment missing after it (not before it) is the gap, across log
// ids and onto later timelines.
func TestContinuity(t *testing.T) {
	seg := func(tli, log, no int) string { return fmt.Sprintf("%08X%08X%08X", tli, log, no) }
	for _, tc := range []struct {
		name            string
		names           []string
		start           string
		newest, missing string
	}{
		{"whole", []string{seg(1, 0, 2), seg(1, 0, 3), seg(1, 0, 4), "00000001.history"}, seg(1, 0, 2), seg(1, 0, 4), ""},
		{"older segments before the start are no gap", []string{seg(1, 0, 1), seg(1, 0, 5), seg(1, 0, 6)}, seg(1, 0, 5), seg(1, 0, 6), ""},
		{"gap after the start", []string{seg(1, 0, 2), seg(1, 0, 3), seg(1, 0, 5)}, seg(1, 0, 2), seg(1, 0, 3), seg(1, 0, 4)},
		{"start missing", []string{seg(1, 0, 3), seg(1, 0, 4)}, seg(1, 0, 2), "", seg(1, 0, 2)},
		{"no segment at all", nil, seg(1, 0, 2), "", seg(1, 0, 2)},
		{"across a log id", []string{seg(1, 0, 0xFF), seg(1, 1, 0), seg(1, 1, 1)}, seg(1, 0, 0xFF), seg(1, 1, 1), ""},
		{"a later timeline", []string{seg(1, 0, 2), seg(1, 0, 3), "00000002.history", seg(2, 0, 3), seg(2, 0, 4)}, seg(1, 0, 2), seg(2, 0, 4), ""},
		{"gap on a later timeline", []string{seg(1, 0, 2), seg(2, 0, 3), seg(2, 0, 5)}, seg(1, 0, 2), seg(2, 0, 3), seg(2, 0, 4)},
		{"earlier timelines are not followed", []string{seg(1, 0, 2), seg(1, 0, 9), seg(2, 0, 3)}, seg(2, 0, 3), seg(2, 0, 3), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newest, missing := Continuity(tc.names, tc.start, 0)
			if newest != tc.newest || missing != tc.missing {
				t.Errorf("Continuity = %q, %q; want %q, %q", newest, missing, tc.newest, tc.missing)
			}
		})
	}
	if got, err := SegmentOfLSN(1, "0/2000028", 0); err != nil || got != "000000010000000000000002" {
		t.Errorf("SegmentOfLSN(1, 0/2000028) = %q, %v", got, err)
	}
	if got, err := SegmentOfLSN(3, "1/FF000000", 0); err != nil || got != "0000000300000001000000FF" {
		t.Errorf("SegmentOfLSN(3, 1/FF000000) = %q, %v", got, err)
	}
}
