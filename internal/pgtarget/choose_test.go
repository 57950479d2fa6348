package pgtarget

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func bb(id string, tli uint32, start, stop string, stopMin int, snap string) *basebackup.BaseBackup {
	return &basebackup.BaseBackup{ID: id, Timeline: tli, StartLSN: start, StopLSN: stop, StartTime: at(stopMin - 1), StopTime: at(stopMin), StopSnapshot: snap}
}

// segs are segments lo..hi of a timeline, each stored at minute
// 10*segment number and 1 MB in the store.
func segs(tli uint32, lo, hi uint64, except ...uint64) []File {
	var out []File
	for n := lo; n <= hi; n++ {
		skip := false
		for _, e := range except {
			skip = skip || e == n
		}
		if !skip {
			out = append(out, File{Name: walobj.SegmentName(fmt.Sprintf("%08X", tli), n, 0), Size: 1 << 20, Stored: at(int(10 * n))})
		}
	}
	return out
}

func seg(tli uint32, n uint64) string { return walobj.SegmentName(fmt.Sprintf("%08X", tli), n, 0) }

func archive(files []File, hist map[uint32]string) Archive {
	a := Archive{Files: files, Histories: map[uint32][]walobj.Switch{}}
	for t, h := range hist {
		sw, err := walobj.ParseHistory([]byte(h))
		if err != nil {
			panic(err)
		}
		a.Histories[t] = sw
		a.Files = append(a.Files, File{Name: walobj.HistoryName(t)})
	}
	return a
}

func cat(fs ...[]File) []File {
	var out []File
	for _, f := range fs {
		out = append(out, f...)
	}
	return out
}

func TestChoose(t *testing.T) {
	// Two base backups on timeline 1: bb1 in segment 2, bb2 in segment 5.
	two := []*basebackup.BaseBackup{
		bb("bb1", 1, "0/2000028", "0/2000100", 21, "100:105:"),
		bb("bb2", 1, "0/5000028", "0/5000100", 51, "200:210:203"),
	}
	old := []*basebackup.BaseBackup{bb("bb1", 1, "0/2000028", "0/2000100", 21, ""), bb("bb2", 1, "0/5000028", "0/5000100", 51, "")}
	tl1 := archive(segs(1, 2, 9), nil)
	lsn := func(s string) LSN {
		l, err := ParseLSN(s)
		if err != nil {
			panic(err)
		}
		return l
	}
	type step struct {
		TLI         uint32
		First, Last string
		N           int
	}
	for _, c := range []struct {
		name     string
		list     []*basebackup.BaseBackup
		a        Archive
		t        Target
		base     string
		timeline uint32
		setting  string
		steps    []step
		missing  []string
		blocking bool
		open     bool
		why      string // in Why or a note
		err      string
	}{
		{name: "latest", list: two, a: tl1, t: Target{}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}},
		{name: "lsn before every base backup", list: two, a: tl1, t: Target{Kind: AtLSN, LSN: lsn("0/1000000")},
			err: "no base backup before LSN 0/1000000: the oldest, bb1, ends at 0/2000100"},
		{name: "lsn picks the newest ending before it", list: two, a: tl1, t: Target{Kind: AtLSN, LSN: lsn("0/4000010")}, base: "bb1", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 2), seg(1, 4), 3}}, why: "ends before LSN 0/4000010"},
		{name: "lsn at a base backup's end", list: two, a: tl1, t: Target{Kind: AtLSN, LSN: lsn("0/5000100")}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 5), 1}}},
		{name: "lsn with a hole", list: two, a: archive(segs(1, 2, 9, 3), nil), t: Target{Kind: AtLSN, LSN: lsn("0/4000010")}, base: "bb1", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 2), seg(1, 4), 3}}, missing: []string{seg(1, 3)}, blocking: true},
		{name: "lsn beyond the archive", list: two, a: tl1, t: Target{Kind: AtLSN, LSN: lsn("0/B000000")}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 11), 7}}, missing: []string{seg(1, 10), seg(1, 11)}, blocking: true},
		{name: "latest with a hole", list: two, a: archive(segs(1, 2, 9, 7), nil), t: Target{}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, missing: []string{seg(1, 7)}, blocking: true},
		{name: "timeline not in the archive", list: two, a: tl1, t: Target{Timeline: "3"}, err: "timeline 3 not in the archive: timelines 1"},
		{name: "timeline 2 through its history", list: two,
			a: archive(cat(segs(1, 2, 5), segs(2, 6, 8)), map[uint32]string{2: "1\t0/6000000\tno recovery target specified\n"}),
			t: Target{}, base: "bb2", timeline: 2, setting: "2",
			steps: []step{{1, seg(1, 5), seg(1, 5), 1}, {2, seg(2, 6), seg(2, 8), 3}}},
		{name: "timeline 2 by number", list: two,
			a: archive(cat(segs(1, 2, 5), segs(2, 6, 8)), map[uint32]string{2: "1\t0/6000000\tno recovery target specified\n"}),
			t: Target{Timeline: "2", Kind: AtLSN, LSN: lsn("0/7000000")}, base: "bb2", timeline: 2, setting: "2",
			steps: []step{{1, seg(1, 5), seg(1, 5), 1}, {2, seg(2, 6), seg(2, 7), 2}}},
		{name: "lsn on the parent timeline stops there", list: two,
			a: archive(cat(segs(1, 2, 9), segs(2, 6, 8)), map[uint32]string{2: "1\t0/6000000\tr\n"}),
			t: Target{Kind: AtLSN, LSN: lsn("0/5800000")}, base: "bb2", timeline: 2, setting: "2",
			steps: []step{{1, seg(1, 5), seg(1, 5), 1}}},
		{name: "current stays on the base backup's timeline", list: two,
			a: archive(cat(segs(1, 2, 9), segs(2, 6, 8)), map[uint32]string{2: "1\t0/6000000\tr\n"}),
			t: Target{Timeline: "current"}, base: "bb2", timeline: 1, setting: "current",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}},
		{name: "timeline forked before the newest base backup's end", list: two,
			a: archive(cat(segs(1, 2, 9), segs(2, 3, 4)), map[uint32]string{2: "1\t0/3000000\tr\n"}),
			t: Target{Timeline: "2"}, base: "bb1", timeline: 2, setting: "2",
			steps: []step{{1, seg(1, 2), seg(1, 2), 1}, {2, seg(2, 3), seg(2, 4), 2}}},
		{name: "timeline forked before every base backup", list: two,
			a:   archive(cat(segs(1, 1, 9), segs(2, 1, 4)), map[uint32]string{2: "1\t0/1800000\tr\n"}),
			t:   Target{Timeline: "2"},
			err: "bb1 (timeline 1, ends at 0/2000100): timeline 2 does not descend from it after its end"},
		{name: "switch inside the base backup's segment", list: two[1:],
			a: archive(cat(segs(1, 5, 5), segs(2, 5, 6)), map[uint32]string{2: "1\t0/5800000\tr\n"}),
			t: Target{}, base: "bb2", timeline: 2, setting: "2",
			steps: []step{{1, "", "", 0}, {2, seg(2, 5), seg(2, 6), 2}}},
		{name: "history file missing", list: two, a: archive(cat(segs(1, 2, 9), segs(2, 10, 11)), nil), t: Target{Timeline: "2"},
			err: "timeline 2 has no history file (00000002.history) in the store"},
		{name: "xid after the newest's snapshot", list: two, a: tl1, t: Target{Kind: XID, XID: 250}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true, why: "transaction snapshot says so"},
		{name: "xid still running at the newest's end", list: two, a: tl1, t: Target{Kind: XID, XID: 203}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true},
		{name: "xid that ended before the newest did", list: two, a: tl1, t: Target{Kind: XID, XID: 205}, base: "bb1", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 2), seg(1, 9), 8}}, open: true},
		{name: "xid before every base backup", list: two, a: tl1, t: Target{Kind: XID, XID: 50},
			err: "no base backup before xid 50: it had ended before the oldest, bb1, did"},
		{name: "xid with records that cannot tell", list: old, a: tl1, t: Target{Kind: XID, XID: 50}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true, why: "taken by an older agent"},
		{name: "name", list: two, a: tl1, t: Target{Kind: Name, Name: "before-drop"}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true, why: "choose an older one with --base-backup"},
		{name: "name with a hole after the base backup's end", list: two, a: archive(segs(1, 2, 9, 7), nil), t: Target{Kind: Name, Name: "x"}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 6), 2}}, open: true, missing: []string{seg(1, 7)}, why: "replay stops there"},
		{name: "name with the base backup's own WAL missing", list: two, a: archive(segs(1, 2, 9, 5), nil), t: Target{Kind: Name, Name: "x"}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true, missing: []string{seg(1, 5)}, blocking: true},
		{name: "immediate", list: two, a: tl1, t: Target{Kind: Immediate}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 5), 1}}},
		{name: "time before every base backup", list: two, a: tl1, t: Target{Kind: Time, Time: at(10)},
			err: "no base backup finished before 2026-12-01T10:10:00Z: the oldest, bb1, finished 2026-12-01T10:21:00Z"},
		{name: "time ends at the first segment stored after it", list: two, a: tl1, t: Target{Kind: Time, Time: at(35)}, base: "bb1", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 2), seg(1, 4), 3}}},
		{name: "time after the archive", list: two, a: tl1, t: Target{Kind: Time, Time: at(200)}, base: "bb2", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 5), seg(1, 9), 5}}, open: true, why: "recovery ends before it reaches the target"},
		{name: "base backup chosen", list: two, a: tl1, t: Target{BaseBackup: "bb1"}, base: "bb1", timeline: 1, setting: "1",
			steps: []step{{1, seg(1, 2), seg(1, 9), 8}}, why: "--base-backup"},
		{name: "base backup unknown", list: two, a: tl1, t: Target{BaseBackup: "bb9"}, err: "no base backup bb9: the source has bb1, bb2"},
		{name: "base backup chosen cannot reach", list: two, a: tl1, t: Target{BaseBackup: "bb2", Kind: AtLSN, LSN: lsn("0/4000000")},
			err: "base backup bb2 cannot reach LSN 0/4000000"},
		{name: "none", a: tl1, err: "no base backup: take one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Choose(c.list, c.a, c.t)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []step
			for _, s := range p.Steps {
				got = append(got, step{s.Timeline, s.First, s.Last, s.Segments})
			}
			if diff := cmp.Diff(c.steps, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if p.Base.ID != c.base || p.Timeline != c.timeline || p.TimelineSetting != c.setting || p.Open != c.open || p.Blocking != c.blocking {
				t.Errorf("base %s timeline %d %q open %v blocking %v, want %s %d %q %v %v", p.Base.ID, p.Timeline, p.TimelineSetting, p.Open, p.Blocking, c.base, c.timeline, c.setting, c.open, c.blocking)
			}
			if diff := cmp.Diff(c.missing, p.Missing); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			n := 0
			for _, s := range p.Steps {
				n += s.Segments
			}
			if p.Segments != n || p.ReplayBytes != int64(n)*walobj.DefaultSegmentSize {
				t.Errorf("%d segments, %d bytes to replay; the steps have %d", p.Segments, p.ReplayBytes, n)
			}
			if c.why != "" && !strings.Contains(p.Why+strings.Join(p.Notes, "\n"), c.why) {
				t.Errorf("why %q, notes %q: want %q", p.Why, p.Notes, c.why)
			}
			if err := p.Err(); (err != nil) != c.blocking || (err != nil && !errors.Is(err, ErrMissingWAL)) {
				t.Errorf("Err() = %v, blocking %v", err, c.blocking)
			}
		})
	}
}

func TestPlanErr(t *testing.T) {
	list := []*basebackup.BaseBackup{bb("bb1", 1, "0/2000028", "0/2000100", 21, "")}
	p, err := Choose(list, archive(segs(1, 2, 9, 7), nil), Target{Kind: AtLSN, LSN: 0x8000000})
	if err != nil {
		t.Fatal(err)
	}
	want := "WAL not in the store: 000000010000000000000007 missing between base backup bb1 and the target"
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Err() = %v, want %q", err, want)
	}
}

func TestSettings(t *testing.T) {
	list := []*basebackup.BaseBackup{bb("bb1", 1, "0/2000028", "0/2000100", 21, "")}
	for _, c := range []struct {
		t    Target
		want []Setting
	}{
		{Target{}, []Setting{{"recovery_target_action", "promote"}, {"recovery_target_timeline", "1"}}},
		{Target{Kind: Time, Time: at(90).Add(1500 * time.Microsecond)}, []Setting{{"recovery_target_time", "2026-12-01 11:30:00.0015+00:00"}, {"recovery_target_action", "promote"}, {"recovery_target_timeline", "1"}}},
		{Target{Kind: AtLSN, LSN: 0x3000060, Exclusive: true}, []Setting{{"recovery_target_lsn", "0/3000060"}, {"recovery_target_inclusive", "off"}, {"recovery_target_action", "promote"}, {"recovery_target_timeline", "1"}}},
		{Target{Kind: XID, XID: 742}, []Setting{{"recovery_target_xid", "742"}, {"recovery_target_action", "promote"}, {"recovery_target_timeline", "1"}}},
		{Target{Kind: Name, Name: "before-drop"}, []Setting{{"recovery_target_name", "before-drop"}, {"recovery_target_action", "promote"}, {"recovery_target_timeline", "1"}}},
		{Target{Kind: Immediate, Timeline: "current"}, []Setting{{"recovery_target", "immediate"}, {"recovery_target_action", "promote"}, {"recovery_target_timeline", "current"}}},
	} {
		t.Run(c.t.Kind.String(), func(t *testing.T) {
			p, err := Choose(list, archive(segs(1, 2, 9), nil), c.t)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, p.Settings()); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]LSN{"0/3000060": 0x3000060, "16/B374D848": 0x16B374D848, "FFFFFFFF/FFFFFFFF": 1<<64 - 1} {
		if got, err := ParseLSN(in); err != nil || got != want || got.String() != strings.ToUpper(in) {
			t.Errorf("ParseLSN(%q) = %v (%s), %v; want %v", in, got, got, err, want)
		}
	}
	for _, in := range []string{"", "3000060", "0/", "/1", "0/x", "100000000/0", "-1/0"} {
		if _, err := ParseLSN(in); err == nil {
			t.Errorf("ParseLSN(%q) accepted", in)
		}
	}
}

// A record without LSNs (a hand-made or damaged one) is still chosen for a
// time on its own timeline, its WAL from its stop segment.
func TestChooseRecordWithoutLSNs(t *testing.T) {
	list := []*basebackup.BaseBackup{{ID: "bb1", Timeline: 1, StopTime: at(21), StopSegment: seg(1, 4)}}
	p, err := Choose(list, archive(segs(1, 2, 9), nil), Target{Kind: Time, Time: at(65), Timeline: "current"})
	if err != nil || p.Base.ID != "bb1" || len(p.Steps) != 1 || p.Steps[0].First != seg(1, 4) || p.Steps[0].Last != seg(1, 7) {
		t.Fatalf("plan %+v, %v", p, err)
	}
}
