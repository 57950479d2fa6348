package pgtarget

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Range is a run of consecutive segments on one timeline.
type Range struct {
	First, Last string
	Segments    int64
	// LastStored is when the range's last segment was stored.
	LastStored time.Time
}

// TimelineWAL is what the archive holds of one timeline.
type TimelineWAL struct {
	Timeline uint32
	// Parent and Switch: the timeline this one branched from and where
	// (from its history file; none for timeline 1).
	Parent         uint32
	Switch         string
	HistoryMissing bool
	Ranges         []Range
	// Gaps are the segments missing between the ranges.
	Gaps         []Range
	PartialFiles int64
	Bytes        int64
}

// Summary is what pg ls shows of a source's WAL.
type Summary struct {
	// FirstRecoverable is the oldest base backup whose own WAL is all in
	// the store: a restore can stop no earlier than its end. Nil: none is.
	FirstRecoverable *basebackup.BaseBackup
	Timelines        []TimelineWAL
}

// Summarize says per timeline which WAL the archive holds and where the
// earliest restore can stop.
func Summarize(list []*basebackup.BaseBackup, a Archive) Summary {
	var s Summary
	for _, b := range list {
		p, err := Choose(list, a, Target{Kind: Immediate, BaseBackup: b.ID, Timeline: "current"})
		if err == nil && len(p.Missing) == 0 {
			s.FirstRecoverable = b
			break
		}
	}
	segSize := a.SegmentSize
	type segment struct {
		no uint64
		f  File
	}
	by := map[uint32][]segment{}
	tw := map[uint32]*TimelineWAL{}
	get := func(tli uint32) *TimelineWAL {
		if tw[tli] == nil {
			tw[tli] = &TimelineWAL{Timeline: tli}
		}
		return tw[tli]
	}
	for _, f := range a.Files {
		k := walobj.Classify(f.Name)
		if k == walobj.Unknown {
			continue
		}
		n, err := strconv.ParseUint(f.Name[:8], 16, 32)
		if err != nil {
			continue
		}
		t := get(uint32(n))
		t.Bytes += f.Size
		switch k {
		case walobj.Segment:
			if no, err := walobj.SegmentNumber(f.Name, segSize); err == nil {
				by[t.Timeline] = append(by[t.Timeline], segment{no, f})
			}
		case walobj.Partial:
			t.PartialFiles++
		}
	}
	for tli, h := range a.Histories {
		t := get(tli)
		if len(h) > 0 {
			t.Parent, t.Switch = h[len(h)-1].Parent, h[len(h)-1].End
		}
	}
	tlis := make([]uint32, 0, len(tw))
	for tli, t := range tw {
		tlis = append(tlis, tli)
		if _, ok := a.Histories[tli]; tli > 1 && !ok {
			t.HistoryMissing = true
		}
	}
	slices.Sort(tlis)
	for _, tli := range tlis {
		t := tw[tli]
		segs := by[tli]
		slices.SortFunc(segs, func(x, y segment) int { return cmpU(x.no, y.no) })
		name := func(no uint64) string { return walobj.SegmentName(fmt.Sprintf("%08X", tli), no, segSize) }
		for i, sg := range segs {
			if i > 0 && sg.no == segs[i-1].no {
				continue
			}
			if i > 0 && sg.no == segs[i-1].no+1 {
				r := &t.Ranges[len(t.Ranges)-1]
				r.Last, r.Segments, r.LastStored = sg.f.Name, r.Segments+1, sg.f.Stored
				continue
			}
			if i > 0 {
				t.Gaps = append(t.Gaps, Range{First: name(segs[i-1].no + 1), Last: name(sg.no - 1), Segments: int64(sg.no - segs[i-1].no - 1)})
			}
			t.Ranges = append(t.Ranges, Range{First: sg.f.Name, Last: sg.f.Name, Segments: 1, LastStored: sg.f.Stored})
		}
		s.Timelines = append(s.Timelines, *t)
	}
	return s
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
