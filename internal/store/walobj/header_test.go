package walobj

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// The first pages of segments PostgreSQL 15's initdb wrote, with the
// default and with --wal-segsize=64 (testdata; pg_controldata printed the
// system identifiers).
func TestParsePageHeaderOfRealSegments(t *testing.T) {
	for _, tc := range []struct {
		file    string
		sysid   uint64
		segSize int64
	}{
		{"testdata/pg15-16mb-000000010000000000000001.page", 7714408867723807667, 16 << 20},
		{"testdata/pg15-64mb-000000010000000000000001.page", 7714408870778145745, 64 << 20},
	} {
		data, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParsePageHeader(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if h.SystemID != tc.sysid || h.SegmentSize != tc.segSize || h.Timeline != 1 || h.BlockSize != 8192 || h.Magic != 0xD110 {
			t.Errorf("%s: %+v", tc.file, h)
		}
		if err := h.CheckName("000000010000000000000001"); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
		if err := h.CheckName("000000010000000000000001.partial"); err != nil {
			t.Errorf("%s as .partial: %v", tc.file, err)
		}
		for _, other := range []string{"000000010000000000000002", "000000020000000000000001"} {
			if err := h.CheckName(other); !errors.Is(err, ErrNotWAL) {
				t.Errorf("%s named %s: %v, want ErrNotWAL", tc.file, other, err)
			}
		}
	}
	if _, err := ParsePageHeader(make([]byte, 8192)); !errors.Is(err, ErrNotWAL) {
		t.Errorf("zeros: %v, want ErrNotWAL", err)
	}
	if _, err := ParsePageHeader([]byte("one")); !errors.Is(err, ErrNotWAL) {
		t.Errorf("three bytes: %v, want ErrNotWAL", err)
	}
}

// With 64 MB segments a log id holds 64 of them: ...3F is followed by the
// next log id's ...00, which 16 MB arithmetic takes for a gap of 192.
func TestGapsWithTheSegmentSize(t *testing.T) {
	names := []string{"00000001000000000000003E", "00000001000000000000003F", "000000010000000100000000", "000000010000000100000002"}
	if got := Gaps(names, 64<<20); len(got) != 1 || got[0] != "000000010000000100000001" {
		t.Errorf("Gaps with 64 MB segments = %v, want only 000000010000000100000001", got)
	}
	if got := Gaps(names, 0); len(got) < 100 {
		t.Errorf("Gaps with 16 MB segments = %d names, want the false gap after 3F", len(got))
	}
	r, err := SegmentRange("00000001000000000000003F", "000000010000000100000001", 64<<20)
	if err != nil || strings.Join(r, " ") != "00000001000000000000003F 000000010000000100000000 000000010000000100000001" {
		t.Errorf("SegmentRange = %v, %v", r, err)
	}
	if _, err := SegmentRange("000000010000000000000040", "000000010000000000000041", 64<<20); err == nil {
		t.Error("SegmentRange accepted segment 40 of a 64 MB log id")
	}
	lsn, _ := ParseLSN("1/4000028")
	if got := SegmentOf(1, lsn, 64<<20); got != "000000010000000100000001" {
		t.Errorf("SegmentOf(1/4000028, 64 MB) = %s", got)
	}
}

// The first claim wins; a later one gets the record in force; ListArchived
// counts gaps with the record's segment size.
func TestClaimSystem(t *testing.T) {
	ctx := context.Background()
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ClaimSystem(ctx, s, System{Source: "pg", SystemID: "7299", SegmentSize: 64 << 20, FirstFile: "00000001000000000000003F"})
	if err != nil || first.SystemID != "7299" || first.Version != 1 {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	second, err := ClaimSystem(ctx, s, System{Source: "pg", SystemID: "7301", SegmentSize: 16 << 20})
	if err != nil || second.SystemID != "7299" || second.SegmentSize != 64<<20 {
		t.Fatalf("second claim: %+v, %v; want the first's record", second, err)
	}
	enc := newEncoder(t)
	for _, n := range []string{"00000001000000000000003F", "000000010000000100000000"} {
		var obj bytes.Buffer
		enc.Encode(&obj, []byte(n))
		if _, err := s.Put(ctx, Key("pg", n), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
	}
	a, err := ListArchived(ctx, s, "pg")
	if err != nil || len(a.Gaps) != 0 || a.Files != 2 || a.System == nil {
		t.Errorf("ListArchived: %+v, %v; want 2 files, no gaps, the system", a, err)
	}
	// A record that is not one is named, not trusted.
	if _, err := s.Put(ctx, SystemKey("bad"), strings.NewReader(`{"version":1,"source":"other"}`), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSystem(ctx, s, "bad"); err == nil {
		t.Error("ReadSystem accepted another source's record")
	}
}

// The same file shipped again is recognised from the headers alone, or
// by decoding an object of the older format.
func TestSameFile(t *testing.T) {
	ctx := context.Background()
	s, _ := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	enc := newEncoder(t)
	raw := bytes.Repeat([]byte("segment"), 1000)
	var obj bytes.Buffer
	enc.Encode(&obj, raw)
	if _, err := s.Put(ctx, "k", bytes.NewReader(obj.Bytes()), int64(obj.Len())); err != nil {
		t.Fatal(err)
	}
	hdr := ObjectHeader(obj.Bytes())
	if same, err := SameFile(ctx, s, "k", hdr, raw); !same || err != nil {
		t.Errorf("same bytes: %v, %v", same, err)
	}
	other := append(bytes.Clone(raw), '!')
	var obj2 bytes.Buffer
	enc.Encode(&obj2, other)
	if same, err := SameFile(ctx, s, "k", ObjectHeader(obj2.Bytes()), other); same || err != nil {
		t.Errorf("other bytes: %v, %v", same, err)
	}
	if same, err := SameFile(ctx, s, "k", "drwal1 x y", raw); !same || err != nil {
		t.Errorf("same bytes, other format: %v, %v", same, err)
	}
}
