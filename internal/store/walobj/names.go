package walobj

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
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
