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

// SegmentsPerLogID is how many segments one "log id" holds with
// PostgreSQL's default 16 MiB segments.
const SegmentsPerLogID = 0x100000000 / (16 << 20)

// segNo is a segment's position on its timeline.
func segNo(name string) (uint64, error) {
	log, err := strconv.ParseUint(name[8:16], 16, 32)
	if err != nil {
		return 0, err
	}
	seg, err := strconv.ParseUint(name[16:24], 16, 32)
	if err != nil {
		return 0, err
	}
	return log*SegmentsPerLogID + seg, nil
}

func segName(tli string, no uint64) string {
	return fmt.Sprintf("%s%08X%08X", tli, no/SegmentsPerLogID, no%SegmentsPerLogID)
}

// Gaps lists the segments missing between the first and the last segment
// of each timeline in names (the store's). A gap means recovery past it is
// impossible.
func Gaps(names []string) []string {
	byTLI := map[string][]uint64{}
	for _, n := range names {
		if Classify(n) != Segment {
			continue
		}
		no, err := segNo(n)
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
				gaps = append(gaps, segName(t, missing))
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
// numbered as PostgreSQL's default 16 MiB ones (SegmentsPerLogID per log
// id); names that no such segment has are left out.
func Continuity(names []string, start string) (newest, missing string) {
	if _, ok := segNo16(start); !ok {
		return "", start
	}
	byTLI := map[string]map[uint64]bool{}
	for _, n := range names {
		no, ok := segNo16(n)
		if !ok {
			continue
		}
		if byTLI[Timeline(n)] == nil {
			byTLI[Timeline(n)] = map[uint64]bool{}
		}
		byTLI[Timeline(n)][no] = true
	}
	tli := Timeline(start)
	from, _ := segNo16(start)
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
			newest = segName(t, no)
			no++
		}
		if no <= last {
			return newest, segName(t, no)
		}
	}
	return newest, ""
}

// segNo16 is a segment's position on its timeline when name is a segment
// of 16 MiB segments.
func segNo16(name string) (uint64, bool) {
	if Classify(name) != Segment {
		return 0, false
	}
	if seg, err := strconv.ParseUint(name[16:24], 16, 32); err != nil || seg >= SegmentsPerLogID {
		return 0, false
	}
	no, err := segNo(name)
	return no, err == nil
}

// SegmentOfLSN is the name of the 16 MiB segment holding lsn ("0/2000028")
// on timeline tli.
func SegmentOfLSN(tli uint32, lsn string) (string, error) {
	hi, lo, ok := strings.Cut(lsn, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("LSN %q: want X/Y in hex", lsn)
	}
	return segName(fmt.Sprintf("%08X", tli), (h<<32|l)/(16<<20)), nil
}
