package recoveryplan

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Layers of a plan, in the order a recovery restores them.
const (
	LayerEtcd     = "etcd"
	LayerFiles    = "files"
	LayerPostgres = "postgres"
	LayerBucket   = "bucket"
)

// Layers lists every layer, in order (what --skip-layer accepts).
var Layers = []string{LayerEtcd, LayerFiles, LayerPostgres, LayerBucket}

// Target is the moment a plan recovers to: a time, a backup set's, or
// the latest of everything (exactly one).
type Target struct {
	Time      time.Time
	BackupSet string
	Latest    bool
}

func (t Target) String() string {
	switch {
	case t.BackupSet != "":
		return "backup set " + t.BackupSet
	case t.Latest:
		return "latest"
	}
	return ts(t.Time)
}

// Part is one thing the recovery restores.
type Part struct {
	Layer string
	// Node is where the part is restored: the datastore snapshot's
	// server, the node whose files these are, the WAL source's node (from
	// its base backup); empty for bucket sources (any agent restores them).
	Node string
	// What names it: the snapshot's name, the restic snapshot's id, the
	// WAL source, the bucket source.
	What string
	// Point is the part's recovery point: the newest moment it brings back.
	Point time.Time
	// Why says why this was picked, or, Missing, why nothing was.
	Why     string
	Missing bool

	// Snapshot is the datastore snapshot (etcd layer).
	Snapshot *dbsnap.Snapshot
	// SnapshotID and BackupSet are the restic snapshot and its set (files).
	SnapshotID string
	BackupSet  string
	// BaseBackup is the base backup the database restores from; PGTime the
	// recovery target, zero for the end of the archived WAL (postgres).
	BaseBackup string
	PGTime     time.Time
	// PGData is the source's data directory on its node (from the base
	// backup record), where a recovery restores it by default.
	PGData string
	// BucketTo is the time the bucket is restored to (bucket).
	BucketTo time.Time
}

// Plan is what a recovery restores, in layer order.
type Plan struct {
	Target Target
	// At is the moment the layers were picked for (the target's time, the
	// set's finish, or when the plan was made for latest).
	At    time.Time
	Parts []Part
}

// Missing returns the layers with a part that has nothing to restore.
func (p *Plan) Missing() []Part {
	var out []Part
	for _, part := range p.Parts {
		if part.Missing {
			out = append(out, part)
		}
	}
	return out
}

// Layer returns the parts of one layer.
func (p *Plan) Layer(layer string) []Part {
	var out []Part
	for _, part := range p.Parts {
		if part.Layer == layer {
			out = append(out, part)
		}
	}
	return out
}

// Without drops the parts of the given layers.
func (p *Plan) Without(layers ...string) *Plan {
	out := &Plan{Target: p.Target, At: p.At}
	for _, part := range p.Parts {
		skip := false
		for _, l := range layers {
			skip = skip || part.Layer == l
		}
		if !skip {
			out.Parts = append(out.Parts, part)
		}
	}
	return out
}

// WriteTable prints the plan as a table: LAYER NODE WHAT POINT WHY.
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tNODE\tWHAT\tPOINT\tWHY")
	for _, part := range p.Parts {
		point := "-"
		if !part.Point.IsZero() {
			point = ts(part.Point)
		}
		node, what := part.Node, part.What
		if node == "" {
			node = "-"
		}
		if part.Missing {
			what = "NOTHING"
			if part.What != "" {
				what = part.What + " (NOTHING)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", part.Layer, node, what, point, part.Why)
	}
	return tw.Flush()
}

// FileSnapshot is one node's restic snapshot.
type FileSnapshot struct {
	Node string
	ID   string
	// Time is when the snapshot's data was read (its start).
	Time time.Time
	// Done is when the snapshot was complete; a snapshot is at or before
	// a time only when it was done by then.
	Done      time.Time
	BackupSet string
	Paths     []string
}

// WALSource is what the store holds of one PostgreSQL WAL source.
type WALSource struct {
	Name string
	// BaseBackups oldest first (basebackup.List).
	BaseBackups []*basebackup.BaseBackup
	// Segments are the archived WAL segments and when each was stored.
	Segments []Segment
	// SegmentSize is the database's wal_segsize as its source recorded
	// it (wal/<source>/system.json); 0: PostgreSQL's default.
	SegmentSize int64
}

// Segment is one archived WAL file.
type Segment struct {
	Name   string
	Stored time.Time
}

// BucketSource is one bucket source's finished passes.
type BucketSource struct {
	Name string
	// Passes are the starts of its finished passes.
	Passes []time.Time
}

// Inputs are what the plan picks from.
type Inputs struct {
	Snapshots []*dbsnap.Snapshot
	Files     []FileSnapshot
	Sets      []*backupset.Set
	WAL       []WALSource
	Buckets   []BucketSource
	// Now is when the plan is made (the time of a latest plan).
	Now time.Time
}

// ErrNoSet means the target names a backup set the store does not hold.
var ErrNoSet = errors.New("backup set not found")

// Pick makes the plan for target.
func Pick(in Inputs, target Target) (*Plan, error) {
	n := 0
	for _, b := range []bool{!target.Time.IsZero(), target.BackupSet != "", target.Latest} {
		if b {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("recovery plan: give exactly one of a time, a backup set or latest")
	}
	p := &Plan{Target: target}
	switch {
	case target.Latest:
		p.At = in.Now
	case target.BackupSet != "":
		var set *backupset.Set
		for _, s := range in.Sets {
			if s.ID == target.BackupSet {
				set = s
			}
		}
		if set == nil {
			return nil, fmt.Errorf("%w: %s (kubectl dr backup ls lists them)", ErrNoSet, target.BackupSet)
		}
		p.At = set.Finished
		p.Parts = append(p.Parts, setEtcd(in, set))
		p.Parts = append(p.Parts, setFiles(in, set)...)
	default:
		p.At = target.Time
	}
	if target.BackupSet == "" {
		p.Parts = append(p.Parts, pickEtcd(in, p.At, target.Latest))
		p.Parts = append(p.Parts, pickFiles(in, p.At, target.Latest)...)
	}
	p.Parts = append(p.Parts, pickWAL(in, p.At, target)...)
	p.Parts = append(p.Parts, pickBuckets(in, p.At, target.Latest)...)
	return p, nil
}

// ts formats a time as --to takes it (fractions only when there are).
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// usable reports whether a datastore snapshot can be restored from the
// store: uploaded, with its data object.
func usable(s *dbsnap.Snapshot) bool { return s.Uploaded && s.StoreKey != "" }

func etcdPart(s *dbsnap.Snapshot, why string) Part {
	return Part{Layer: LayerEtcd, Node: s.Node, What: s.Name, Point: s.Created, Snapshot: s, Why: why}
}

func pickEtcd(in Inputs, at time.Time, latest bool) Part {
	list := append([]*dbsnap.Snapshot(nil), in.Snapshots...)
	dbsnap.SortNewestFirst(list)
	var oldest *dbsnap.Snapshot
	for _, s := range list {
		if !usable(s) {
			continue
		}
		oldest = s
		if latest || !s.Created.After(at) {
			why := "newest datastore snapshot"
			if !latest {
				why += " at or before " + ts(at)
			}
			return etcdPart(s, why)
		}
	}
	part := Part{Layer: LayerEtcd, Missing: true}
	if oldest == nil {
		part.Why = "no datastore snapshot in the store: take one with kubectl dr etcd snapshot save"
	} else {
		part.Why = fmt.Sprintf("no datastore snapshot at or before %s: the oldest, %s, was taken %s", ts(at), oldest.Name, ts(oldest.Created))
	}
	return part
}

func setEtcd(in Inputs, set *backupset.Set) Part {
	if set.Etcd == nil || set.Etcd.Snapshot == "" {
		why := "backup set " + set.ID + " has no datastore snapshot"
		if set.Etcd != nil && set.Etcd.Error != "" {
			why += ": " + set.Etcd.Error
		}
		return Part{Layer: LayerEtcd, Node: nodeOf(set.Etcd), Missing: true, Why: why}
	}
	for _, s := range in.Snapshots {
		if s.Name == set.Etcd.Snapshot && s.Node == set.Etcd.Node && usable(s) {
			return etcdPart(s, "the datastore snapshot of backup set "+set.ID)
		}
	}
	return Part{Layer: LayerEtcd, Node: set.Etcd.Node, What: set.Etcd.Snapshot, Missing: true,
		Why: "backup set " + set.ID + " names snapshot " + set.Etcd.Snapshot + ", which is not in the store (removed by retention?)"}
}

func nodeOf(e *backupset.EtcdPart) string {
	if e == nil {
		return ""
	}
	return e.Node
}

// fileNodes is every node that has file snapshots, sorted.
func fileNodes(in Inputs) []string {
	seen := map[string]bool{}
	var nodes []string
	for _, f := range in.Files {
		if !seen[f.Node] {
			seen[f.Node] = true
			nodes = append(nodes, f.Node)
		}
	}
	sort.Strings(nodes)
	return nodes
}

func filePart(f FileSnapshot, why string) Part {
	return Part{Layer: LayerFiles, Node: f.Node, What: f.ID, Point: f.Time, SnapshotID: f.ID, BackupSet: f.BackupSet, Why: why}
}

func pickFiles(in Inputs, at time.Time, latest bool) []Part {
	var parts []Part
	for _, node := range fileNodes(in) {
		var best, oldest *FileSnapshot
		for i := range in.Files {
			f := &in.Files[i]
			if f.Node != node {
				continue
			}
			if oldest == nil || f.Time.Before(oldest.Time) {
				oldest = f
			}
			if (latest || !f.Done.After(at)) && (best == nil || f.Time.After(best.Time)) {
				best = f
			}
		}
		if best != nil {
			why := "newest file snapshot of " + node
			if !latest {
				why += " done by " + ts(at)
			}
			if best.BackupSet != "" {
				why += " (backup set " + best.BackupSet + ")"
			}
			parts = append(parts, filePart(*best, why))
			continue
		}
		parts = append(parts, Part{Layer: LayerFiles, Node: node, Missing: true,
			Why: fmt.Sprintf("no file snapshot of %s done by %s: the oldest, %s, was done %s", node, ts(at), oldest.ID, ts(oldest.Done))})
	}
	return parts
}

func setFiles(in Inputs, set *backupset.Set) []Part {
	var parts []Part
	for _, fp := range set.Files {
		if fp.Failed() || fp.SnapshotID == "" {
			why := "backup set " + set.ID + " has no file snapshot of " + fp.Node
			if fp.Error != "" {
				why += ": " + fp.Error
			}
			parts = append(parts, Part{Layer: LayerFiles, Node: fp.Node, Missing: true, BackupSet: set.ID, Why: why})
			continue
		}
		f := FileSnapshot{Node: fp.Node, ID: fp.SnapshotID, Time: set.Started, Done: set.Finished, BackupSet: set.ID, Paths: fp.Paths}
		for _, known := range in.Files {
			if known.Node == fp.Node && known.ID == fp.SnapshotID {
				f = known
			}
		}
		parts = append(parts, filePart(f, "the file snapshot of backup set "+set.ID))
	}
	return parts
}

func pickWAL(in Inputs, at time.Time, target Target) []Part {
	sources := append([]WALSource(nil), in.WAL...)
	sort.Slice(sources, func(i, j int) bool { return sources[i].Name < sources[j].Name })
	var parts []Part
	for _, src := range sources {
		parts = append(parts, pickSource(src, at, target.Latest))
	}
	return parts
}

func pickSource(src WALSource, at time.Time, latest bool) Part {
	part := Part{Layer: LayerPostgres, What: src.Name}
	// The base backup is the one pg restore would choose for the time (on
	// its own timeline: the WAL reach below follows that one).
	list := append([]*basebackup.BaseBackup(nil), src.BaseBackups...)
	sort.SliceStable(list, func(i, j int) bool { return list[i].StopTime.Before(list[j].StopTime) })
	target := pgtarget.Target{Kind: pgtarget.Time, Time: at, Timeline: "current"}
	if latest {
		target.Kind = pgtarget.Latest
	}
	var base *basebackup.BaseBackup
	if p, err := pgtarget.Choose(list, pgtarget.Archive{SegmentSize: src.SegmentSize}, target); err == nil {
		base = p.Base
	}
	if base == nil {
		part.Missing = true
		if len(src.BaseBackups) == 0 {
			part.Why = "no base backup of " + src.Name + ": take one with kubectl dr pg basebackup " + src.Name
		} else {
			oldest := src.BaseBackups[0]
			for _, b := range src.BaseBackups {
				if b.StopTime.Before(oldest.StopTime) {
					oldest = b
				}
			}
			part.Node = oldest.Node
			part.Why = fmt.Sprintf("no base backup of %s finished by %s: the oldest, %s, finished %s", src.Name, ts(at), oldest.ID, ts(oldest.StopTime))
		}
		return part
	}
	part.Node, part.BaseBackup, part.PGData = base.Node, base.ID, base.PGData
	last, reaches, gap := walReach(src.Segments, src.SegmentSize, base, at, latest)
	switch {
	case reaches:
		part.Point, part.PGTime = at, at
		part.Why = fmt.Sprintf("base backup %s (finished %s) and WAL through %s, archived %s", base.ID, ts(base.StopTime), last.Name, ts(last.Stored))
	default:
		// Replay what there is: to the end of the archive, or to the gap.
		part.Point = base.StopTime
		if last.Name != "" && last.Stored.After(base.StopTime) {
			part.Point = last.Stored
		}
		switch {
		case latest:
			part.Why = fmt.Sprintf("base backup %s and every archived WAL segment, through %s", base.ID, orNone(last.Name))
		case gap != "":
			part.Why = fmt.Sprintf("WAL segment %s is missing: replaying base backup %s up to it, to %s, the newest point before %s", gap, base.ID, ts(part.Point), ts(at))
		default:
			part.Why = fmt.Sprintf("WAL archived only until %s (%s): replaying base backup %s to the end of the archive, the newest point before %s", ts(part.Point), orNone(last.Name), base.ID, ts(at))
		}
	}
	return part
}

func orNone(s string) string {
	if s == "" {
		return "none after the base backup"
	}
	return s
}

// walReach follows the base backup's timeline's segments from its stop
// segment on while they are contiguous. reaches: one stored at or after
// at (so WAL up to at is archived); last: the last contiguous one (up to
// the first stored at or after at); gap: the first missing segment.
func walReach(segs []Segment, segSize int64, base *basebackup.BaseBackup, at time.Time, latest bool) (last Segment, reaches bool, gap string) {
	tli := fmt.Sprintf("%08X", base.Timeline)
	if len(base.StopSegment) == 24 {
		tli = walobj.Timeline(base.StopSegment)
	}
	var mine []Segment
	for _, s := range segs {
		if walobj.Classify(s.Name) == walobj.Segment && walobj.Timeline(s.Name) == tli && s.Name >= base.StopSegment {
			mine = append(mine, s)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Name < mine[j].Name })
	if len(mine) == 0 || mine[0].Name != base.StopSegment {
		return Segment{}, false, base.StopSegment
	}
	for i, s := range mine {
		if i > 0 {
			if g := walobj.Gaps([]string{mine[i-1].Name, s.Name}, segSize); len(g) > 0 {
				return last, false, g[0]
			}
		}
		last = s
		if !latest && !s.Stored.Before(at) {
			return last, true, ""
		}
	}
	return last, false, ""
}

func pickBuckets(in Inputs, at time.Time, latest bool) []Part {
	sources := append([]BucketSource(nil), in.Buckets...)
	sort.Slice(sources, func(i, j int) bool { return sources[i].Name < sources[j].Name })
	var parts []Part
	for _, src := range sources {
		part := Part{Layer: LayerBucket, What: src.Name, BucketTo: at}
		var before, after time.Time
		for _, p := range src.Passes {
			if !p.After(at) && p.After(before) {
				before = p
			}
			if p.After(at) && (after.IsZero() || p.Before(after)) {
				after = p
			}
		}
		// A pass records what it saw when it ran: the bucket is known as of
		// the newest finished pass that started by the target. Restoring
		// to the target also brings back what later passes saw modified
		// before it.
		switch {
		case before.IsZero():
			part.Missing = true
			part.Why = "no finished pass of " + src.Name + " at or before " + ts(at) + ": run kubectl dr bucket backup " + src.Name
			if len(src.Passes) == 0 {
				part.Why = "no finished pass of " + src.Name + ": run kubectl dr bucket backup " + src.Name
			}
		case latest:
			part.Point, part.BucketTo = before, before
			part.Why = "newest finished pass, started " + ts(before)
		case !after.IsZero():
			part.Point = before
			part.Why = fmt.Sprintf("newest finished pass by %s started %s; versions as of %s (the pass of %s adds what it saw modified before then)", ts(at), ts(before), ts(at), ts(after))
		default:
			part.Point = before
			part.Why = fmt.Sprintf("newest finished pass started %s: changes after it are not in the store", ts(before))
		}
		parts = append(parts, part)
	}
	return parts
}

// MissingError lists the layers with nothing to restore, as a refusal.
func MissingError(missing []Part) error {
	var lines []string
	for _, m := range missing {
		name := m.Layer
		if m.What != "" {
			name += " " + m.What
		} else if m.Node != "" {
			name += " of " + m.Node
		}
		lines = append(lines, name+": "+m.Why)
	}
	return fmt.Errorf("nothing to restore for %s", strings.Join(lines, "; "))
}
