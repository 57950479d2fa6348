package pgtarget

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
)

func TestSummarize(t *testing.T) {
	list := []*basebackup.BaseBackup{
		bb("bb1", 1, "0/2000028", "0/3000100", 21, ""), // its segment 3 is missing
		bb("bb2", 1, "0/5000028", "0/5000100", 51, ""),
	}
	a := archive(cat(segs(1, 2, 9, 3, 7, 8), segs(2, 9, 10), []File{{Name: "000000010000000000000009.partial", Size: 5}}),
		map[uint32]string{2: "1\t0/9000100\tno recovery target specified\n", 3: "1\t0/9000100\tr\n2\t0/A800000\tr\n"})
	s := Summarize(list, a)
	if s.FirstRecoverable == nil || s.FirstRecoverable.ID != "bb2" {
		t.Errorf("first recoverable %v, want bb2 (bb1's WAL has a hole)", s.FirstRecoverable)
	}
	want := []TimelineWAL{
		{Timeline: 1, Ranges: []Range{{First: seg(1, 2), Last: seg(1, 2), Segments: 1, LastStored: at(20)}, {First: seg(1, 4), Last: seg(1, 6), Segments: 3, LastStored: at(60)}, {First: seg(1, 9), Last: seg(1, 9), Segments: 1, LastStored: at(90)}},
			Gaps: []Range{{First: seg(1, 3), Last: seg(1, 3), Segments: 1}, {First: seg(1, 7), Last: seg(1, 8), Segments: 2}}, PartialFiles: 1, Bytes: 5<<20 + 5},
		{Timeline: 2, Parent: 1, Switch: "0/9000100", Ranges: []Range{{First: seg(2, 9), Last: seg(2, 10), Segments: 2, LastStored: at(100)}}, Bytes: 2 << 20},
		{Timeline: 3, Parent: 2, Switch: "0/A800000"},
	}
	if diff := cmp.Diff(want, s.Timelines); diff != "" {
		t.Errorf("timelines (-want +got):\n%s", diff)
	}
	if s := Summarize(list[:1], a); s.FirstRecoverable != nil {
		t.Errorf("first recoverable %s, want none", s.FirstRecoverable.ID)
	}
}
