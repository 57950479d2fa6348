package drillreport

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func step(name string, from, to float64, restore bool) Step {
	return Step{Name: name, Start: at(from), End: at(to), OK: true, Restore: restore}
}

func point(sec float64) *time.Time { t := at(sec); return &t }

// sample is a drill of three layers run in parallel: etcd restores in 10s,
// files in 25s, postgres in 40s with a check of 2s.
func sample() *Report {
	return &Report{
		ID: "drill-20261201-120000", Started: t0, Ended: at(60), Backup: Latest,
		Targets: Targets{RTO: "30m0s", RPO: "5m0s"},
		Parts: []Part{
			{Layer: LayerEtcd, Name: "s1", Node: "server-1", OK: true, RecoveryPoint: point(-120),
				Steps: []Step{step("fetch", 0, 4, true), step("restore", 4, 10, true), step("count", 10, 18, false), step("cleanup", 18, 19, false)}},
			{Layer: LayerFiles, Name: "server-1", Node: "server-1", OK: true, RecoveryPoint: point(-600),
				Steps: []Step{step("restore", 0, 25, true), step("read-data", 25, 50, false)}},
			{Layer: LayerPostgres, Name: "pg-main", Node: "server-1", OK: true, RecoveryPoint: point(-3),
				Steps:  []Step{step("wal-continuity", 0, 1, false), step("restore", 1, 30, true), step("replay", 30, 41, true), step("check", 41, 43, false)},
				Checks: []Check{{Name: "orders", OK: true, DurationMS: 2000}}},
		},
	}
}

func TestJudgeRTOIsTheLongestRestorePlusChecks(t *testing.T) {
	r := sample()
	r.Judge(30*time.Minute, 15*time.Minute)
	want := RTO{Seconds: 42, Part: "postgres/pg-main", Complete: true, Path: []PathStep{
		{Part: "postgres/pg-main", Step: "restore", Seconds: 29},
		{Part: "postgres/pg-main", Step: "replay", Seconds: 11},
		{Part: "postgres/pg-main", Step: "check orders", Seconds: 2},
	}}
	if diff := cmp.Diff(want, r.RTO); diff != "" {
		t.Errorf("RTO (-want +got):\n%s", diff)
	}
	if r.WallSeconds != 60 {
		t.Errorf("wall time %v, want 60", r.WallSeconds)
	}
	if !r.Passed || len(r.Reasons) > 0 {
		t.Errorf("passed %v, reasons %q; want a pass", r.Passed, r.Reasons)
	}
	wantRPO := []RPO{
		{Layer: "etcd", Name: "s1", RecoveryPoint: at(-120), Seconds: 120, OK: true},
		{Layer: "files", Name: "server-1", RecoveryPoint: at(-600), Seconds: 600, OK: true},
		{Layer: "postgres", Name: "pg-main", RecoveryPoint: at(-3), Seconds: 3, OK: true},
	}
	if diff := cmp.Diff(wantRPO, r.RPO); diff != "" {
		t.Errorf("RPO (-want +got):\n%s", diff)
	}
}

func TestJudgeFails(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rto, rpo time.Duration
		mutate   func(*Report)
		want     []string
	}{
		{name: "rto over target", rto: 30 * time.Second, rpo: time.Hour,
			want: []string{"RTO 42s is over the target 30s (critical path: postgres/pg-main)"}},
		{name: "rpo over target", rto: time.Hour, rpo: 5 * time.Minute,
			want: []string{"RPO of files/server-1 is 10m0s (newest restorable point 2026-12-01T11:50:00Z), over the target 5m0s"}},
		{name: "a part failed names the object", rto: time.Hour, rpo: time.Hour,
			mutate: func(r *Report) {
				r.Parts[0].OK = false
				r.Parts[0].Problems = []string{"etcd/server-1/s1.db.zst.age: sha256 ab, metadata says cd"}
			},
			want: []string{"etcd/s1 on server-1: etcd/server-1/s1.db.zst.age: sha256 ab, metadata says cd"}},
		{name: "an agent vanished", rto: time.Hour, rpo: time.Hour,
			mutate: func(r *Report) {
				r.Parts[1].OK = false
				r.Parts[1].Error = "the agent on server-1 stopped answering mid-part"
			},
			want: []string{"files/server-1 on server-1: the agent on server-1 stopped answering mid-part"}},
		{name: "no recovery point", rto: time.Hour, rpo: time.Hour,
			mutate: func(r *Report) { r.Parts[2].RecoveryPoint = nil },
			want:   []string{"postgres/pg-main on server-1: the rehearsal reported no recovery point, so its RPO is unknown"}},
		{name: "nothing ran", rto: time.Hour, rpo: time.Hour,
			mutate: func(r *Report) {
				for i := range r.Parts {
					r.Parts[i].NotRun = "no agent"
				}
			},
			want: []string{"nothing was rehearsed: no part could run (see the notes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample()
			if tc.mutate != nil {
				tc.mutate(r)
			}
			r.Judge(tc.rto, tc.rpo)
			if r.Passed {
				t.Fatal("the drill passed")
			}
			if diff := cmp.Diff(tc.want, r.Reasons); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}

// A part that was not run is a note, not a failure; a failed part leaves
// the RTO incomplete and out of the critical path.
func TestJudgeNotRunAndIncomplete(t *testing.T) {
	r := sample()
	r.Parts[2].NotRun = "no PostgreSQL server binaries on server-1"
	r.Notes = []string{"not run: check web (GET https://shop.example/) needs the live platform"}
	r.Judge(time.Hour, time.Hour)
	if !r.Passed {
		t.Fatalf("failed: %q", r.Reasons)
	}
	if want := []string{"not run: check web (GET https://shop.example/) needs the live platform", "not run: postgres/pg-main: no PostgreSQL server binaries on server-1"}; !cmp.Equal(want, r.Notes) {
		t.Errorf("notes %q, want %q", r.Notes, want)
	}
	if r.RTO.Part != "files/server-1" || r.RTO.Seconds != 25 {
		t.Errorf("RTO %+v, want files/server-1's 25s", r.RTO)
	}
	// Judging again does not repeat the notes.
	r.Judge(time.Hour, time.Hour)
	if len(r.Notes) != 2 {
		t.Errorf("notes after a second Judge: %q", r.Notes)
	}

	r = sample()
	r.Parts[2].OK = false
	r.Parts[2].Error = "gone"
	r.Judge(time.Hour, time.Hour)
	if r.RTO.Complete || r.RTO.Part != "files/server-1" || !strings.HasPrefix(r.Reasons[0], "postgres/pg-main") {
		t.Errorf("RTO %+v reasons %q", r.RTO, r.Reasons)
	}
}

// An interrupted drill does not pass, whatever its parts did, and says so
// first.
func TestJudgeInterruptedDoesNotPass(t *testing.T) {
	r := sample()
	if r.Judge(0, 0); !r.Passed || r.Result() != "PASSED" {
		t.Fatalf("sample: passed %v, result %s, reasons %q", r.Passed, r.Result(), r.Reasons)
	}
	r.Interrupted = true
	r.Judge(0, 0)
	if r.Passed || r.Result() != "INTERRUPTED" || len(r.Reasons) == 0 || !strings.HasPrefix(r.Reasons[0], "interrupted") {
		t.Errorf("interrupted: passed %v, result %s, reasons %q", r.Passed, r.Result(), r.Reasons)
	}
}
