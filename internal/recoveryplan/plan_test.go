package recoveryplan

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func snap(name string, min int) *dbsnap.Snapshot {
	return &dbsnap.Snapshot{Name: name, Node: "server-1", Created: at(min), Uploaded: true, StoreKey: "etcd/server-1/" + name + ".db.zst"}
}

func seg(n int, min int) Segment {
	return Segment{Name: "0000000100000000" + strings.ToUpper(hex8(n)), Stored: at(min)}
}

func hex8(n int) string {
	const digits = "0123456789abcdef"
	b := []byte("00000000")
	for i := 7; i >= 0 && n > 0; i-- {
		b[i] = digits[n%16]
		n /= 16
	}
	return string(b)
}

func base(id string, stopMin, stopSeg int) *basebackup.BaseBackup {
	lsn := fmt.Sprintf("0/%X", stopSeg<<24|0x100)
	return &basebackup.BaseBackup{ID: id, Source: "pg-main", Node: "server-1", Timeline: 1, StopTime: at(stopMin), StopSegment: seg(stopSeg, 0).Name, StartLSN: lsn, StopLSN: lsn}
}

func inputs() Inputs {
	return Inputs{
		Now: at(1000),
		Snapshots: []*dbsnap.Snapshot{
			snap("s-10", 10), snap("s-30", 30), snap("s-50", 50),
			{Name: "local-only", Node: "server-1", Created: at(40)}, // never uploaded
		},
		Files: []FileSnapshot{
			{Node: "server-1", ID: "aaaa", Time: at(9), Done: at(11)},
			{Node: "server-1", ID: "bbbb", Time: at(29), Done: at(31)},
			{Node: "agent-1", ID: "cccc", Time: at(20), Done: at(22)},
			{Node: "agent-1", ID: "dddd", Time: at(44), Done: at(46)},
		},
		WAL: []WALSource{{
			Name:        "pg-main",
			BaseBackups: []*basebackup.BaseBackup{base("bb-1", 5, 2), base("bb-2", 38, 6)},
			Segments:    []Segment{seg(2, 6), seg(3, 15), seg(4, 25), seg(5, 36), seg(6, 39), seg(7, 48), seg(8, 60)},
		}},
		Buckets: []BucketSource{{Name: "media", Passes: []time.Time{at(12), at(42)}}},
	}
}

func byLayer(p *Plan, layer, node string) Part {
	for _, part := range p.Parts {
		if part.Layer == layer && (node == "" || part.Node == node || part.What == node) {
			return part
		}
	}
	return Part{Layer: "absent"}
}

func TestPickAtTime(t *testing.T) {
	p, err := Pick(inputs(), Target{Time: at(45)})
	if err != nil {
		t.Fatal(err)
	}
	if e := byLayer(p, LayerEtcd, ""); e.What != "s-30" || !e.Point.Equal(at(30)) || e.Missing {
		t.Errorf("etcd: %+v, want s-30 (s-50 is after, local-only was never uploaded)", e)
	}
	if f := byLayer(p, LayerFiles, "server-1"); f.SnapshotID != "bbbb" {
		t.Errorf("files of server-1: %+v, want bbbb", f)
	}
	// dddd started at 44 but was done only at 46: after the target.
	if f := byLayer(p, LayerFiles, "agent-1"); f.SnapshotID != "cccc" {
		t.Errorf("files of agent-1: %+v, want cccc", f)
	}
	pg := byLayer(p, LayerPostgres, "pg-main")
	if pg.BaseBackup != "bb-2" || !pg.PGTime.Equal(at(45)) || !pg.Point.Equal(at(45)) || pg.Node != "server-1" {
		t.Errorf("postgres: %+v, want bb-2 to the target itself", pg)
	}
	if !strings.Contains(pg.Why, "000000010000000000000007") {
		t.Errorf("postgres why %q: want the segment archived after the target", pg.Why)
	}
	if b := byLayer(p, LayerBucket, "media"); !b.Point.Equal(at(45)) && !b.Point.Equal(at(42)) {
		t.Errorf("bucket: %+v", b)
	}
	if b := byLayer(p, LayerBucket, "media"); !b.Point.Equal(at(42)) || !b.BucketTo.Equal(at(45)) {
		t.Errorf("bucket: %+v, want the pass of 42 and versions as of 45", b)
	}
	if m := p.Missing(); len(m) != 0 {
		t.Errorf("missing: %+v", m)
	}
	var out strings.Builder
	if err := p.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LAYER", "etcd", "s-30", "2026-11-20T10:30:00Z", "bbbb", "pg-main", "media"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPickNothingBeforeTime(t *testing.T) {
	p, err := Pick(inputs(), Target{Time: at(3)})
	if err != nil {
		t.Fatal(err)
	}
	missing := p.Missing()
	layers := map[string]int{}
	for _, m := range missing {
		layers[m.Layer]++
	}
	if layers[LayerEtcd] != 1 || layers[LayerFiles] != 2 || layers[LayerPostgres] != 1 || layers[LayerBucket] != 1 {
		t.Fatalf("missing = %+v, want every layer", missing)
	}
	e := byLayer(p, LayerEtcd, "")
	if !strings.Contains(e.Why, "the oldest, s-10, was taken 2026-11-20T10:10:00Z") {
		t.Errorf("etcd why = %q", e.Why)
	}
	if pg := byLayer(p, LayerPostgres, "pg-main"); !strings.Contains(pg.Why, "the oldest, bb-1, finished 2026-11-20T10:05:00Z") {
		t.Errorf("postgres why = %q", pg.Why)
	}
	err = MissingError(missing)
	if err == nil || !strings.Contains(err.Error(), "etcd: no datastore snapshot at or before 2026-11-20T10:03:00Z") {
		t.Errorf("MissingError = %v", err)
	}
	var out strings.Builder
	p.WriteTable(&out)
	if !strings.Contains(out.String(), "NOTHING") {
		t.Errorf("table does not say NOTHING:\n%s", out.String())
	}
	if p := p.Without(LayerEtcd, LayerFiles, LayerPostgres, LayerBucket); len(p.Parts) != 0 {
		t.Errorf("Without every layer kept %+v", p.Parts)
	}
}

func TestPickEmptyStore(t *testing.T) {
	p, err := Pick(Inputs{Now: at(0)}, Target{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Parts) != 1 || !p.Parts[0].Missing || !strings.Contains(p.Parts[0].Why, "kubectl dr etcd snapshot save") {
		t.Errorf("parts = %+v, want one missing etcd part saying how to take a snapshot", p.Parts)
	}
}

func TestPickWALGap(t *testing.T) {
	in := inputs()
	// Segment 7 never reached the store: replay stops after 6.
	in.WAL[0].Segments = []Segment{seg(2, 6), seg(3, 15), seg(4, 25), seg(5, 36), seg(6, 39), seg(8, 60)}
	p, err := Pick(in, Target{Time: at(45)})
	if err != nil {
		t.Fatal(err)
	}
	pg := byLayer(p, LayerPostgres, "pg-main")
	if pg.Missing || !pg.PGTime.IsZero() || !pg.Point.Equal(at(39)) || pg.BaseBackup != "bb-2" {
		t.Errorf("postgres = %+v, want bb-2 to the end of the archive (39)", pg)
	}
	if !strings.Contains(pg.Why, "WAL segment 000000010000000000000007 is missing") {
		t.Errorf("why = %q", pg.Why)
	}
}

func TestPickWALNotYetArchived(t *testing.T) {
	in := inputs()
	in.WAL[0].Segments = in.WAL[0].Segments[:5] // through segment 6, stored 39
	p, err := Pick(in, Target{Time: at(45)})
	if err != nil {
		t.Fatal(err)
	}
	pg := byLayer(p, LayerPostgres, "pg-main")
	if !pg.PGTime.IsZero() || !pg.Point.Equal(at(39)) || !strings.Contains(pg.Why, "WAL archived only until 2026-11-20T10:39:00Z") {
		t.Errorf("postgres = %+v", pg)
	}
}

func TestPickWALStopSegmentMissing(t *testing.T) {
	in := inputs()
	in.WAL[0].Segments = []Segment{seg(7, 48)}
	p, _ := Pick(in, Target{Time: at(45)})
	pg := byLayer(p, LayerPostgres, "pg-main")
	if !pg.Point.Equal(at(38)) || !strings.Contains(pg.Why, "000000010000000000000006 is missing") {
		t.Errorf("postgres = %+v, want the base backup's end and its missing stop segment named", pg)
	}
}

func TestPickBackupSet(t *testing.T) {
	in := inputs()
	in.Sets = []*backupset.Set{{
		ID: "backup-1", Started: at(29), Finished: at(31),
		Etcd: &backupset.EtcdPart{Node: "server-1", Snapshot: "s-30"},
		Files: []backupset.FilePart{
			{Node: "server-1", SnapshotID: "bbbb"},
			{Node: "agent-1", Error: "restic: repository is locked"},
		},
	}, {
		ID: "backup-2", Started: at(49), Finished: at(51),
		Etcd: &backupset.EtcdPart{Node: "server-1", Snapshot: "pruned"},
	}}
	p, err := Pick(in, Target{BackupSet: "backup-1"})
	if err != nil {
		t.Fatal(err)
	}
	if e := byLayer(p, LayerEtcd, ""); e.What != "s-30" || e.Missing {
		t.Errorf("etcd = %+v", e)
	}
	if f := byLayer(p, LayerFiles, "server-1"); f.SnapshotID != "bbbb" || !f.Point.Equal(at(29)) {
		t.Errorf("files of server-1 = %+v", f)
	}
	if f := byLayer(p, LayerFiles, "agent-1"); !f.Missing || !strings.Contains(f.Why, "repository is locked") {
		t.Errorf("files of agent-1 = %+v, want missing with the set's error", f)
	}
	if pg := byLayer(p, LayerPostgres, "pg-main"); !pg.PGTime.Equal(at(31)) {
		t.Errorf("postgres = %+v, want the set's finish", pg)
	}
	p, _ = Pick(in, Target{BackupSet: "backup-2"})
	if e := byLayer(p, LayerEtcd, ""); !e.Missing || !strings.Contains(e.Why, "not in the store") {
		t.Errorf("etcd of backup-2 = %+v", e)
	}
	if _, err := Pick(in, Target{BackupSet: "backup-9"}); err == nil || !strings.Contains(err.Error(), "backup set not found: backup-9") {
		t.Errorf("unknown set: %v", err)
	}
}

func TestPickLatest(t *testing.T) {
	p, err := Pick(inputs(), Target{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	if e := byLayer(p, LayerEtcd, ""); e.What != "s-50" {
		t.Errorf("etcd = %+v", e)
	}
	if f := byLayer(p, LayerFiles, "agent-1"); f.SnapshotID != "dddd" {
		t.Errorf("files = %+v", f)
	}
	if pg := byLayer(p, LayerPostgres, "pg-main"); !pg.PGTime.IsZero() || !pg.Point.Equal(at(60)) {
		t.Errorf("postgres = %+v, want everything archived (60)", pg)
	}
	if b := byLayer(p, LayerBucket, "media"); !b.Point.Equal(at(42)) {
		t.Errorf("bucket = %+v", b)
	}
}

func TestPickTargetExactlyOne(t *testing.T) {
	if _, err := Pick(inputs(), Target{}); err == nil {
		t.Error("no target: want an error")
	}
	if _, err := Pick(inputs(), Target{Latest: true, Time: at(1)}); err == nil {
		t.Error("two targets: want an error")
	}
}
