package pgtarget

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Kind is what a recovery stops at.
type Kind int

const (
	// Latest replays every archived WAL file.
	Latest Kind = iota
	// Time stops at the first transaction that committed after Target.Time.
	Time
	// AtLSN stops at the WAL position Target.LSN.
	AtLSN
	// XID stops at transaction Target.XID's commit.
	XID
	// Name stops at the restore point Target.Name (pg_create_restore_point).
	Name
	// Immediate stops as soon as the base backup is consistent: its end.
	Immediate
)

func (k Kind) String() string {
	return [...]string{"latest", "time", "lsn", "xid", "name", "immediate"}[k]
}

// Target is where a restore should stop.
type Target struct {
	Kind Kind
	Time time.Time
	LSN  LSN
	XID  uint64
	Name string
	// Exclusive stops just before the target instead of just after (time,
	// lsn, xid).
	Exclusive bool
	// Timeline to recover along: "" or "latest" (the newest in the
	// archive), "current" (the base backup's) or a number.
	Timeline string
	// BaseBackup, if set, is the id of the base backup to restore (else
	// the newest that reaches the target).
	BaseBackup string
}

// File is one WAL file in the store.
type File struct {
	Name   string
	Size   int64
	Stored time.Time
}

// Archive is what the store holds of a source's WAL.
type Archive struct {
	// Files are the archived WAL files' names (segments, .partial, .backup
	// and .history files), in any order.
	Files []File
	// Histories are the contents of the .history files by timeline.
	Histories map[uint32][]walobj.Switch
	// SegmentSize is the database's wal_segment_size (0: the default).
	SegmentSize int64
}

// Step is the part of the replay on one timeline.
type Step struct {
	Timeline uint32
	// Begin is where replay enters the timeline (the base backup's start
	// or the parent's switch point); End where it leaves it (the switch
	// to the next timeline, or the target; 0: open, the end of the archive).
	Begin, End LSN
	// First and Last are the segments read on this timeline ("" when the
	// step lies within one segment the next timeline holds).
	First, Last string
	Segments    int
}

// Plan is how a restore reaches its target.
type Plan struct {
	Target Target
	Base   *basebackup.BaseBackup
	// Why says why this base backup.
	Why string
	// Timeline is the one recovery ends on; TimelineSetting what
	// recovery_target_timeline is set to.
	Timeline        uint32
	TimelineSetting string
	Steps           []Step
	// Segments are how many WAL segments replay reads (when the end is
	// open: up to the end of the archive); ReplayBytes their size in the
	// database, FetchBytes the size of those present in the store.
	Segments    int
	ReplayBytes int64
	FetchBytes  int64
	// Missing are the segments (and history file) replay needs that the
	// store does not hold; Blocking when the target cannot be reached
	// without them (else they only cut an open-ended replay short).
	Missing  []string
	Blocking bool
	// Open: where the target lies in the WAL is known only during replay
	// (xid, name, a time later than the archive).
	Open  bool
	Notes []string
}

// ErrMissingWAL means WAL the target needs is not in the store.
var ErrMissingWAL = errors.New("WAL not in the store")

// ErrNoTimeline means the target timeline is not in the archive.
var ErrNoTimeline = errors.New("timeline not in the archive")

// Err is the refusal a restore gives for the plan: nil when every
// segment it needs is present.
func (p *Plan) Err() error {
	if !p.Blocking || len(p.Missing) == 0 {
		return nil
	}
	names := p.Missing
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" and %d more", len(p.Missing)-5)
	}
	return fmt.Errorf("%w: %s%s missing between base backup %s and the target: recovery cannot get past it; restore to a point before it (pg ls shows the ranges present) or ship the WAL again",
		ErrMissingWAL, strings.Join(names, ", "), more, p.Base.ID)
}

// Setting is one recovery parameter for postgresql.auto.conf.
type Setting struct{ Name, Value string }

// Settings are the recovery parameters for the plan.
func (p *Plan) Settings() []Setting {
	t := p.Target
	var out []Setting
	switch t.Kind {
	case Time:
		out = append(out, Setting{"recovery_target_time", t.Time.UTC().Format("2006-01-02 15:04:05.999999-07:00")})
	case AtLSN:
		out = append(out, Setting{"recovery_target_lsn", t.LSN.String()})
	case XID:
		out = append(out, Setting{"recovery_target_xid", strconv.FormatUint(t.XID, 10)})
	case Name:
		out = append(out, Setting{"recovery_target_name", t.Name})
	case Immediate:
		out = append(out, Setting{"recovery_target", "immediate"})
	}
	if t.Exclusive {
		out = append(out, Setting{"recovery_target_inclusive", "off"})
	}
	return append(out, Setting{"recovery_target_action", "promote"}, Setting{"recovery_target_timeline", p.TimelineSetting})
}

// Describe is the target as a person reads it.
func (t Target) Describe() string {
	var s string
	switch t.Kind {
	case Latest:
		return "the end of the archive"
	case Time:
		s = "time " + t.Time.UTC().Format(time.RFC3339Nano)
	case AtLSN:
		s = "LSN " + t.LSN.String()
	case XID:
		s = "xid " + strconv.FormatUint(t.XID, 10)
	case Name:
		return fmt.Sprintf("restore point %q", t.Name)
	case Immediate:
		return "the base backup's end (immediate)"
	}
	if t.Exclusive {
		return s + " (exclusive)"
	}
	return s
}

// pathEntry is one timeline of a target timeline's history: it ends at
// End (0 for the target timeline itself).
type pathEntry struct {
	tli uint32
	end LSN
}

// timelines are the timelines the archive holds a file of, ascending.
func (a Archive) timelines() []uint32 {
	seen := map[uint32]bool{}
	for _, f := range a.Files {
		if walobj.Classify(f.Name) == walobj.Unknown {
			continue
		}
		if n, err := strconv.ParseUint(f.Name[:8], 16, 32); err == nil {
			seen[uint32(n)] = true
		}
	}
	for t := range a.Histories {
		seen[t] = true
	}
	out := make([]uint32, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (a Archive) path(tli uint32) ([]pathEntry, error) {
	if tli == 1 {
		return []pathEntry{{tli: 1}}, nil
	}
	h, ok := a.Histories[tli]
	if !ok {
		return nil, fmt.Errorf("%w: timeline %d has no history file (%s) in the store", ErrNoTimeline, tli, walobj.HistoryName(tli))
	}
	var out []pathEntry
	for _, s := range h {
		end, err := ParseLSN(s.End)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", walobj.HistoryName(tli), err)
		}
		out = append(out, pathEntry{tli: s.Parent, end: end})
	}
	return append(out, pathEntry{tli: tli}), nil
}

func joinTLIs(ts []uint32) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = strconv.FormatUint(uint64(t), 10)
	}
	return strings.Join(s, ", ")
}

// targetTimeline resolves the --timeline setting for base backup b.
func (a Archive) targetTimeline(setting string, b *basebackup.BaseBackup) (uint32, string, error) {
	tls := a.timelines()
	switch setting {
	case "", "latest":
		if len(tls) == 0 {
			return b.Timeline, "latest", nil
		}
		return max(tls[len(tls)-1], b.Timeline), "latest", nil
	case "current":
		return b.Timeline, "current", nil
	}
	n, err := strconv.ParseUint(setting, 10, 32)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("timeline %q: want latest, current or a timeline number", setting)
	}
	if !slices.Contains(tls, uint32(n)) && uint32(n) != b.Timeline {
		return 0, "", fmt.Errorf("%w: timeline %d not in the archive: timelines %s", ErrNoTimeline, n, joinTLIs(tls))
	}
	return uint32(n), setting, nil
}

// onPath is the index of b's timeline in path, if b can follow it: the
// timeline must not have ended before b did.
func onPath(path []pathEntry, b *basebackup.BaseBackup) (int, bool) {
	stop, err := ParseLSN(b.StopLSN)
	for i, e := range path {
		if e.tli == b.Timeline {
			// A record without its stop LSN can only stay on its own
			// timeline.
			return i, e.end == 0 || err == nil && stop <= e.end
		}
	}
	return 0, false
}

// reachesXID says whether a restore from b can stop at xid: true when the
// transaction ended after b did (its id at or above the snapshot's xmax, or
// still running then), false when it had ended by then; known false when
// the record has no snapshot.
func reachesXID(b *basebackup.BaseBackup, xid uint64) (reaches, known bool) {
	parts := strings.Split(b.StopSnapshot, ":")
	if len(parts) != 3 {
		return false, false
	}
	xmax, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return false, false
	}
	if xid >= xmax {
		return true, true
	}
	for _, x := range strings.Split(parts[2], ",") {
		if x == strconv.FormatUint(xid, 10) {
			return true, true
		}
	}
	return false, true
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// fits says whether b can reach the target (certain), and why not.
func fits(b *basebackup.BaseBackup, t Target) (ok bool, why string) {
	switch t.Kind {
	case Time:
		if b.StopTime.After(t.Time) {
			return false, "it ended at " + ts(b.StopTime) + ", after the target"
		}
	case AtLSN:
		stop, _ := ParseLSN(b.StopLSN)
		if stop > t.LSN {
			return false, "it ends at LSN " + b.StopLSN + ", after the target (a restore cannot stop before its base backup's end)"
		}
	case XID:
		if r, known := reachesXID(b, t.XID); known && !r {
			return false, fmt.Sprintf("transaction %d had ended by the time it ended (%s)", t.XID, ts(b.StopTime))
		}
	}
	return true, ""
}

// Choose picks the base backup (list oldest first, as basebackup.List
// returns it) and the WAL that reach the target, or says why none does.
// A plan whose WAL is incomplete is returned with Missing set; Plan.Err is
// the refusal.
func Choose(list []*basebackup.BaseBackup, a Archive, t Target) (*Plan, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: take one with kubectl dr pg basebackup", basebackup.ErrNoBaseBackup)
	}
	if t.Kind == Time && t.Time.IsZero() {
		t.Kind = Latest
	}
	var base *basebackup.BaseBackup
	var path []pathEntry
	var setting string
	var tli uint32
	var reasons []string
	var timelineErr error
	for i := len(list) - 1; i >= 0; i-- {
		b := list[i]
		if t.BaseBackup != "" && b.ID != t.BaseBackup {
			continue
		}
		bt, bs, err := a.targetTimeline(t.Timeline, b)
		if err != nil {
			return nil, err
		}
		p, err := a.path(bt)
		if bs == "current" {
			// Replay stays on the base backup's timeline: its ancestors
			// do not matter.
			p, err = []pathEntry{{tli: bt}}, nil
		}
		if err != nil {
			timelineErr = err
			continue
		}
		if _, ok := onPath(p, b); !ok {
			reasons = append(reasons, fmt.Sprintf("%s (timeline %d, ends at %s): timeline %d does not descend from it after its end", b.ID, b.Timeline, b.StopLSN, bt))
			continue
		}
		if ok, why := fits(b, t); !ok {
			reasons = append(reasons, b.ID+": "+why)
			continue
		}
		base, path, setting, tli = b, p, bs, bt
		break
	}
	if base == nil {
		switch {
		case t.BaseBackup != "" && len(reasons) == 0 && timelineErr == nil:
			ids := make([]string, len(list))
			for i, b := range list {
				ids[i] = b.ID
			}
			return nil, fmt.Errorf("%w %s: the source has %s", basebackup.ErrNoBaseBackup, t.BaseBackup, strings.Join(ids, ", "))
		case len(reasons) == 0 && timelineErr != nil:
			return nil, timelineErr
		}
		return nil, noBase(list, t, reasons)
	}
	p := &Plan{Target: t, Base: base, Timeline: tli, TimelineSetting: setting}
	if p.TimelineSetting == "latest" {
		// What the plan shows is what recovery follows, even if a newer
		// timeline appears before it runs.
		p.TimelineSetting = strconv.FormatUint(uint64(tli), 10)
	}
	p.Why = why(base, list, t)
	p.build(a, path)
	return p, nil
}

func noBase(list []*basebackup.BaseBackup, t Target, reasons []string) error {
	oldest := list[0]
	var head string
	switch t.Kind {
	case AtLSN:
		head = fmt.Sprintf("no base backup before LSN %s: the oldest, %s, ends at %s", t.LSN, oldest.ID, oldest.StopLSN)
	case Time:
		head = fmt.Sprintf("no base backup finished before %s: the oldest, %s, finished %s", ts(t.Time), oldest.ID, ts(oldest.StopTime))
	case XID:
		head = fmt.Sprintf("no base backup before xid %d: it had ended before the oldest, %s, did (%s)", t.XID, oldest.ID, ts(oldest.StopTime))
	default:
		head = "no base backup reaches " + t.Describe()
	}
	if t.BaseBackup != "" {
		head = fmt.Sprintf("base backup %s cannot reach %s", t.BaseBackup, t.Describe())
	}
	if len(reasons) > 3 {
		reasons = append(reasons[:3], fmt.Sprintf("and %d more", len(reasons)-3))
	}
	return fmt.Errorf("%w: %s (%s)", basebackup.ErrNoBaseBackup, head, strings.Join(reasons, "; "))
}

func why(b *basebackup.BaseBackup, list []*basebackup.BaseBackup, t Target) string {
	if t.BaseBackup != "" {
		return "chosen with --base-backup"
	}
	switch t.Kind {
	case Time:
		return "the newest base backup that finished before " + ts(t.Time)
	case AtLSN:
		return "the newest base backup that ends before LSN " + t.LSN.String()
	case XID:
		if _, known := reachesXID(b, t.XID); known {
			return fmt.Sprintf("the newest base backup that ended before transaction %d did (its record's transaction snapshot says so)", t.XID)
		}
		return fmt.Sprintf("the newest base backup: its record does not say which transactions ended before it (taken by an older agent), so PostgreSQL finds out while replaying; if recovery ends before xid %d, choose an older one with --base-backup", t.XID)
	case Name:
		s := fmt.Sprintf("the newest base backup: where restore point %q lies is known only while replaying", t.Name)
		if len(list) > 1 {
			s += "; if it was created before this base backup ended (" + ts(b.StopTime) + "), recovery ends without reaching it: choose an older one with --base-backup"
		}
		return s
	case Immediate:
		return "the newest base backup; recovery stops as soon as it is consistent, at its end (" + b.StopLSN + ")"
	}
	return "the newest base backup"
}

type needSeg struct {
	tli  uint32
	no   uint64
	name string
}

// build lays out the steps from the base backup along path and checks
// each segment against the archive.
func (p *Plan) build(a Archive, path []pathEntry) {
	segSize := a.SegmentSize
	if segSize <= 0 {
		segSize = walobj.DefaultSegmentSize
	}
	present := map[string]File{}
	for _, f := range a.Files {
		if walobj.Classify(f.Name) == walobj.Segment {
			present[f.Name] = f
		}
	}
	b := p.Base
	start, errStart := ParseLSN(b.StartLSN)
	stop, errStop := ParseLSN(b.StopLSN)
	if errStop != nil {
		// A record without LSNs still names its stop segment.
		if no, err := walobj.SegmentNumber(b.StopSegment, a.SegmentSize); err == nil {
			stop = LSN(no * uint64(segSize))
		}
	}
	if errStart != nil {
		start = stop
	}
	segOf := func(l LSN) uint64 { return uint64(l) / uint64(segSize) }
	name := func(tli uint32, no uint64) string { return walobj.SegmentName(fmt.Sprintf("%08X", tli), no, segSize) }

	i0, _ := onPath(path, b)
	path = path[i0:]
	// Where the target ends the path, when the WAL can tell.
	var end LSN
	switch p.Target.Kind {
	case AtLSN:
		end = p.Target.LSN
	case Immediate:
		end = stop
	}
	if end != 0 {
		for i, e := range path {
			if e.end == 0 || end < e.end {
				path = path[:i+1]
				path[i].end = 0
				break
			}
		}
	}
	// The segments in replay order; hard ones the target cannot be
	// reached without.
	var need []needSeg
	begin := start
	for i, e := range path {
		st := Step{Timeline: e.tli, Begin: begin, End: e.end}
		from := segOf(begin)
		var to uint64
		last := i == len(path)-1
		switch {
		case !last:
			// The segment holding the switch point is read from the
			// child timeline, which begins with it.
			if segOf(e.end) == from {
				st.Segments = 0
				p.Steps = append(p.Steps, st)
				begin = e.end
				continue
			}
			to = segOf(e.end) - 1
		case end != 0:
			to = segOf(end)
			st.End = end
		default:
			to = from
			tl := fmt.Sprintf("%08X", e.tli)
			for n := range present {
				if walobj.Timeline(n) != tl {
					continue
				}
				if no, err := walobj.SegmentNumber(n, segSize); err == nil && no > to {
					to = no
				}
			}
		}
		st.First, st.Last = name(e.tli, from), name(e.tli, to)
		for no := from; no <= to && len(need) < walobj.MaxSegmentRange; no++ {
			need = append(need, needSeg{tli: e.tli, no: no, name: name(e.tli, no)})
			st.Segments++
		}
		p.Steps = append(p.Steps, st)
		if !last {
			begin = e.end
		}
	}
	if p.Timeline > 1 && p.TimelineSetting != "current" {
		if _, ok := a.Histories[p.Timeline]; !ok {
			p.Missing = append(p.Missing, walobj.HistoryName(p.Timeline))
			p.Blocking = true
		}
	}
	// How far the WAL must go for certain: the base backup's end always;
	// for a time, the first segment stored at or after it (its records
	// are all before the segment was stored, so the target lies in it or
	// later: replay reads on until it finds it); LSN, immediate and latest
	// ends are all hard. Segment numbers only grow along the path.
	hard := len(need)
	switch p.Target.Kind {
	case XID, Name, Time:
		hard = 0
		for i, s := range need {
			if s.no <= segOf(stop) {
				hard = i + 1
			}
		}
		p.Open = true
	}
	if p.Target.Kind == Time {
		for i, s := range need {
			if f, ok := present[s.name]; ok && !f.Stored.Before(p.Target.Time) {
				hard, p.Open = max(hard, i+1), false
				need = need[:max(hard, i+1)]
				break
			}
		}
		if p.Open {
			var newest time.Time
			for _, s := range need {
				if f, ok := present[s.name]; ok && f.Stored.After(newest) {
					newest = f.Stored
				}
			}
			p.Notes = append(p.Notes, fmt.Sprintf("no WAL on this path was stored after %s yet (the newest, %s): recovery ends before it reaches the target unless more is shipped first (kubectl dr wal status)", ts(p.Target.Time), ts(newest)))
		}
	}
	for i, s := range need {
		if f, ok := present[s.name]; ok {
			p.FetchBytes += f.Size
			continue
		}
		if p.Open && i >= hard {
			// An open-ended replay stops at the first hole.
			if i < len(need)-1 {
				p.Notes = append(p.Notes, fmt.Sprintf("WAL %s is missing: replay stops there, and reaches the %s target only if it lies before it", s.name, p.Target.Kind))
				p.Missing = append(p.Missing, s.name)
			}
			need = need[:i]
			break
		}
		p.Missing = append(p.Missing, s.name)
		if i < hard {
			p.Blocking = true
		}
	}
	p.Segments = len(need)
	p.ReplayBytes = int64(len(need)) * segSize
	// The steps as far as the segments go.
	var steps []Step
	for _, st := range p.Steps {
		st.Segments, st.First, st.Last = 0, "", ""
		for _, s := range need {
			if s.tli == st.Timeline {
				if st.First == "" {
					st.First = s.name
				}
				st.Last = s.name
				st.Segments++
			}
		}
		steps = append(steps, st)
		if len(need) > 0 && st.Timeline == need[len(need)-1].tli {
			break
		}
	}
	p.Steps = steps
}
