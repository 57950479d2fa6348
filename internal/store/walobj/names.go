package walobj

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kind is what a file in the spool is.
type Kind int

const (
	Unknown Kind = iota
	Segment      // 000000010000000000000003
	History      // 00000002.history
	Backup       // 000000010000000000000003.00000028.backup
	Partial      // 000000010000000000000003.partial
)

var (
	segmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)
	historyRE = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
	backupRE  = regexp.MustCompile(`^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$`)
	partialRE = regexp.MustCompile(`^[0-9A-F]{24}\.partial$`)
)

// Classify names a spool file's kind; temporary and foreign files are
// Unknown and left alone.
func Classify(name string) Kind {
	switch {
	case segmentRE.MatchString(name):
		return Segment
	case historyRE.MatchString(name):
		return History
	case backupRE.MatchString(name):
		return Backup
	case partialRE.MatchString(name):
		return Partial
	}
	return Unknown
}

// Timeline is the file's timeline as 8 hex digits.
func Timeline(name string) string { return name[:8] }

// Key is the file's key under the store's wal/<source>/.
func Key(source, name string) string {
	return fmt.Sprintf("wal/%s/%s/%s%s", source, Timeline(name), name, ObjectSuffix)
}

// DefaultSegmentSize is PostgreSQL's default wal_segment_size.
const DefaultSegmentSize = 16 << 20

// segmentsPerLogID is how many segments of segSize one "log id" (the
// middle 8 digits of a name) holds.
func segmentsPerLogID(segSize int64) uint64 {
	if segSize <= 0 {
		segSize = DefaultSegmentSize
	}
	return 0x100000000 / uint64(segSize)
}

// segNo is a segment's position on its timeline, for segments of segSize
// bytes (0: the default).
func segNo(name string, segSize int64) (uint64, error) {
	if len(name) < 24 {
		return 0, fmt.Errorf("%q is not a segment's name", name)
	}
	log, err := strconv.ParseUint(name[8:16], 16, 32)
	if err != nil {
		return 0, err
	}
	seg, err := strconv.ParseUint(name[16:24], 16, 32)
	if err != nil {
		return 0, err
	}
	per := segmentsPerLogID(segSize)
	if seg >= per {
		return 0, fmt.Errorf("no segment %s with %d MB segments (the last digits go up to %08X)", name, segSize>>20, per-1)
	}
	return log*per + seg, nil
}

// SegmentName is the name of segment number no on timeline tli (8 hex
// digits) with segments of segSize bytes.
func SegmentName(tli string, no uint64, segSize int64) string {
	per := segmentsPerLogID(segSize)
	return fmt.Sprintf("%s%08X%08X", tli, no/per, no%per)
}

// SegmentOf is the name of the segment holding the position lsn on
// timeline tli.
func SegmentOf(tli uint32, lsn uint64, segSize int64) string {
	if segSize <= 0 {
		segSize = DefaultSegmentSize
	}
	return SegmentName(fmt.Sprintf("%08X", tli), lsn/uint64(segSize), segSize)
}

// MaxSegmentRange is the most segments SegmentRange lists: 16 TiB of WAL
// in default segments, far more than one base backup spans.
const MaxSegmentRange = 1 << 20

// SegmentRange lists the segments from first to last, both included, on
// first's timeline; a range longer than MaxSegmentRange is refused, not
// listed.
func SegmentRange(first, last string, segSize int64) ([]string, error) {
	a, err := segNo(first, segSize)
	if err != nil {
		return nil, err
	}
	b, err := segNo(last, segSize)
	if err != nil {
		return nil, err
	}
	if Timeline(first) != Timeline(last) || b < a {
		return nil, fmt.Errorf("no segment range from %s to %s", first, last)
	}
	if b-a >= MaxSegmentRange {
		return nil, fmt.Errorf("segments %s to %s: %d segments, more than %d: not one base backup's WAL", first, last, b-a+1, MaxSegmentRange)
	}
	out := make([]string, 0, b-a+1)
	for no := a; no <= b; no++ {
		out = append(out, SegmentName(Timeline(first), no, segSize))
	}
	return out, nil
}

// Gaps lists the segments missing between the first and the last segment
// of each timeline in names (the store's), segments being segSize bytes
// (0: the default). A gap means recovery past it is impossible.
func Gaps(names []string, segSize int64) []string {
	byTLI := map[string][]uint64{}
	for _, n := range names {
		if Classify(n) != Segment {
			continue
		}
		no, err := segNo(n, segSize)
		if err != nil {
			continue
		}
		byTLI[Timeline(n)] = append(byTLI[Timeline(n)], no)
	}
	var gaps []string
	tlis := make([]string, 0, len(byTLI))
	for t := range byTLI {
		tlis = append(tlis, t)
	}
	sort.Strings(tlis)
	for _, t := range tlis {
		nos := byTLI[t]
		sort.Slice(nos, func(i, j int) bool { return nos[i] < nos[j] })
		for i := 1; i < len(nos); i++ {
			for missing := nos[i-1] + 1; missing < nos[i]; missing++ {
				if len(gaps) >= 100 {
					return append(gaps, "...")
				}
				gaps = append(gaps, SegmentName(t, missing, segSize))
			}
		}
	}
	return gaps
}

// Continuity follows the archive in names (the store's) from segment
// start: along start's timeline, then along each later timeline from its
// first segment. It returns the newest segment reached without a gap and
// the first segment missing, "" when none is: replay from start cannot go
// past missing. A start that is itself missing is the gap. Segments are
// segSize bytes (0: the default); names that no such segment has are left
// out.
func Continuity(names []string, start string, segSize int64) (newest, missing string) {
	seg := func(n string) (uint64, bool) {
		if Classify(n) != Segment {
			return 0, false
		}
		no, err := segNo(n, segSize)
		return no, err == nil
	}
	from, ok := seg(start)
	if !ok {
		return "", start
	}
	byTLI := map[string]map[uint64]bool{}
	for _, n := range names {
		no, ok := seg(n)
		if !ok {
			continue
		}
		if byTLI[Timeline(n)] == nil {
			byTLI[Timeline(n)] = map[uint64]bool{}
		}
		byTLI[Timeline(n)][no] = true
	}
	tli := Timeline(start)
	if !byTLI[tli][from] {
		return "", start
	}
	var tlis []string
	for t := range byTLI {
		if t >= tli {
			tlis = append(tlis, t)
		}
	}
	sort.Strings(tlis)
	for i, t := range tlis {
		nos := byTLI[t]
		if i > 0 || t != tli {
			from = ^uint64(0)
			for no := range nos {
				from = min(from, no)
			}
		}
		var last uint64
		for no := range nos {
			last = max(last, no)
		}
		no := from
		for nos[no] {
			newest = SegmentName(t, no, segSize)
			no++
		}
		if no <= last {
			return newest, SegmentName(t, no, segSize)
		}
	}
	return newest, ""
}

// SegmentOfLSN is the name of the segment of segSize bytes (0: the
// default) holding lsn ("0/2000028") on timeline tli.
func SegmentOfLSN(tli uint32, lsn string, segSize int64) (string, error) {
	hi, lo, ok := strings.Cut(lsn, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("LSN %q: want X/Y in hex", lsn)
	}
	return SegmentOf(tli, h<<32|l, segSize), nil
}
