package walobj

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// PageHeader is what the first page of a WAL segment says about the
// database that wrote it: PostgreSQL's long page header (xlog_internal.h's
// XLogLongPageHeaderData), little-endian as on every platform the agent
// runs on.
type PageHeader struct {
	Magic    uint16
	Timeline uint32
	// PageAddr is the segment's first LSN.
	PageAddr uint64
	// SystemID is the database system identifier initdb chose; every
	// segment and the control file of one database carry it.
	SystemID    uint64
	SegmentSize int64
	BlockSize   int
}

// LongPageHeaderSize is how many bytes ParsePageHeader reads.
const LongPageHeaderSize = 40

// xlpLongHeader is the xlp_info flag of a segment's first page.
const xlpLongHeader = 0x0002

// ErrNotWAL means a file does not begin as a WAL segment does.
var ErrNotWAL = errors.New("not a WAL segment")

// ParsePageHeader reads the long page header at the start of a segment
// (or a .partial one). It checks what a header must be, not what a
// database chose: the magic of any PostgreSQL version, a segment size of 1
// MB to 1 GB and a page size of 1 to 64 kB (both powers of two), a page
// address at a segment's start.
func ParsePageHeader(data []byte) (PageHeader, error) {
	if len(data) < LongPageHeaderSize {
		return PageHeader{}, fmt.Errorf("%w: %d bytes, a segment's first page header is %d", ErrNotWAL, len(data), LongPageHeaderSize)
	}
	le := binary.LittleEndian
	h := PageHeader{
		Magic:       le.Uint16(data[0:2]),
		Timeline:    le.Uint32(data[4:8]),
		PageAddr:    le.Uint64(data[8:16]),
		SystemID:    le.Uint64(data[24:32]),
		SegmentSize: int64(le.Uint32(data[32:36])),
		BlockSize:   int(le.Uint32(data[36:40])),
	}
	info := le.Uint16(data[2:4])
	switch {
	case h.Magic>>8 != 0xD0 && h.Magic>>8 != 0xD1:
		return PageHeader{}, fmt.Errorf("%w: page magic 0x%04X is no PostgreSQL version's", ErrNotWAL, h.Magic)
	case info&xlpLongHeader == 0:
		return PageHeader{}, fmt.Errorf("%w: the first page has no long header (xlp_info 0x%04X)", ErrNotWAL, info)
	case !pow2(h.SegmentSize, 1<<20, 1<<30):
		return PageHeader{}, fmt.Errorf("%w: segment size %d is not a power of two from 1 MB to 1 GB", ErrNotWAL, h.SegmentSize)
	case !pow2(int64(h.BlockSize), 1<<10, 64<<10):
		return PageHeader{}, fmt.Errorf("%w: WAL page size %d is not a power of two from 1 to 64 kB", ErrNotWAL, h.BlockSize)
	case h.PageAddr%uint64(h.SegmentSize) != 0:
		return PageHeader{}, fmt.Errorf("%w: page address %s is not at the start of a %d-byte segment", ErrNotWAL, LSN(h.PageAddr), h.SegmentSize)
	case h.Timeline == 0:
		return PageHeader{}, fmt.Errorf("%w: timeline 0", ErrNotWAL)
	}
	return h, nil
}

func pow2(v, lo, hi int64) bool { return v >= lo && v <= hi && v&(v-1) == 0 }

// CheckName checks that the header is the one of the segment (or .partial
// file) name: its timeline and its first LSN.
func (h PageHeader) CheckName(name string) error {
	if k := Classify(name); k != Segment && k != Partial {
		return fmt.Errorf("%s is not a segment's name", name)
	}
	tli, _ := strconv.ParseUint(name[:8], 16, 32)
	no, err := segNo(name, h.SegmentSize)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotWAL, name, err)
	}
	if uint32(tli) != h.Timeline || no*uint64(h.SegmentSize) != h.PageAddr {
		return fmt.Errorf("%w: %s begins with the page of timeline %d at %s, which is segment %s",
			ErrNotWAL, name, h.Timeline, LSN(h.PageAddr), SegmentName(fmt.Sprintf("%08X", h.Timeline), h.PageAddr/uint64(h.SegmentSize), h.SegmentSize))
	}
	return nil
}

// LSN formats a WAL position as PostgreSQL does (16/B374D848).
func LSN(p uint64) string { return fmt.Sprintf("%X/%X", p>>32, uint32(p)) }

// ParseLSN reads a position as PostgreSQL prints it.
func ParseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("WAL position %q: %w", s, err)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}
