package drillreport

import (
	"time"
)

// Layers of a drill part.
const (
	LayerEtcd     = "etcd"
	LayerFiles    = "files"
	LayerPostgres = "postgres"
	LayerBucket   = "bucket"
)

// Latest is Report.Backup when each layer's newest point was rehearsed.
const Latest = "latest"

// Report is drills/<id>.json.
type Report struct {
	// Version is the store format version (store.FormatVersion).
	Version   int    `json:"version,omitempty"`
	ID        string `json:"id"`
	ClusterID string `json:"clusterID,omitempty"`
	// Runner is who ran the drill: the kubeconfig's user, or "schedule on
	// NODE" for an unattended one.
	Runner  string    `json:"runner"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// Backup is the backup set rehearsed, or "latest".
	Backup  string  `json:"backup"`
	Targets Targets `json:"targets"`
	Parts   []Part  `json:"parts"`
	// RTO is the time a real recovery of this backup takes on these
	// nodes: the critical path of the recovery plan.
	RTO RTO `json:"rto"`
	// WallSeconds is how long the drill itself took (with its own checks
	// and cleanup, which a recovery does not do).
	WallSeconds float64 `json:"wallSeconds"`
	// RPO is each rehearsed layer's age at the drill's start.
	RPO    []RPO `json:"rpo,omitempty"`
	Passed bool  `json:"passed"`
	// Interrupted: the drill was stopped (Ctrl-C, SIGTERM) before every
	// part finished; it did not pass.
	Interrupted bool `json:"interrupted,omitempty"`
	// Reasons say why the drill failed, one line each.
	Reasons []string `json:"reasons,omitempty"`
	// Notes are what the drill did not rehearse, and why.
	Notes []string `json:"notes,omitempty"`
	// Tools are the versions that ran it: the plugin's, each agent's,
	// restic's, PostgreSQL's.
	Tools map[string]string `json:"tools,omitempty"`
	// HTMLSHA256 is the checksum of drills/<id>.html.
	HTMLSHA256 string `json:"htmlSHA256,omitempty"`
	// Checksum is the sha256 of this record encoded with Checksum empty.
	Checksum string `json:"checksum,omitempty"`
}

// Targets are what the drill was judged by.
type Targets struct {
	RTO string `json:"rto"`
	RPO string `json:"rpo"`
	// Source says where they came from: "config", "flags", "defaults".
	Source string `json:"source,omitempty"`
}

// Part is one layer's rehearsal on one node.
type Part struct {
	Layer string `json:"layer"`
	Name  string `json:"name"`
	Node  string `json:"node,omitempty"`
	OK    bool   `json:"ok"`
	// NotRun says why the part was not rehearsed (no agent can, ...); it
	// is a note on the report, not a failure.
	NotRun string `json:"notRun,omitempty"`
	// Error is why the part did not finish (its agent vanished, ...).
	Error    string   `json:"error,omitempty"`
	Steps    []Step   `json:"steps,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// RecoveryPoint is the newest point the layer was restored to.
	RecoveryPoint *time.Time        `json:"recoveryPoint,omitempty"`
	Facts         map[string]string `json:"facts,omitempty"`
	Counts        map[string]int64  `json:"counts,omitempty"`
	Checks        []Check           `json:"checks,omitempty"`
	BytesRestored int64             `json:"bytesRestored,omitempty"`
	FilesRestored int64             `json:"filesRestored,omitempty"`
	ScratchDir    string            `json:"scratchDir,omitempty"`
	// RestoreSeconds is the sum of the part's restore steps.
	RestoreSeconds float64 `json:"restoreSeconds"`
}

// Step is one timed step of a part.
type Step struct {
	Name   string    `json:"name"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail,omitempty"`
	Error  string    `json:"error,omitempty"`
	// Restore: a real recovery does this step; the RTO counts it.
	Restore bool `json:"restore,omitempty"`
}

// Seconds is the step's duration.
func (s Step) Seconds() float64 {
	if s.End.Before(s.Start) {
		return 0
	}
	return s.End.Sub(s.Start).Seconds()
}

// Check is one of the user's checks, run against the scratch copy.
type Check struct {
	Name       string `json:"name"`
	Query      string `json:"query,omitempty"`
	Expect     string `json:"expect,omitempty"`
	Got        string `json:"got,omitempty"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"durationMS"`
}

// RTO is the measured recovery time and where it comes from.
type RTO struct {
	Seconds float64 `json:"seconds"`
	// Part is the layer whose restore takes longest (layer/name).
	Part string `json:"part,omitempty"`
	// Path is the critical path: that part's restore steps, then the
	// checks a recovery runs once everything is back.
	Path []PathStep `json:"path,omitempty"`
	// Complete is false when a part failed: its restore time is unknown,
	// so the RTO is at least Seconds.
	Complete bool `json:"complete"`
}

// PathStep is one step on the critical path.
type PathStep struct {
	Part    string  `json:"part"`
	Step    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// RPO is one layer's newest restorable point and its age.
type RPO struct {
	Layer         string    `json:"layer"`
	Name          string    `json:"name"`
	RecoveryPoint time.Time `json:"recoveryPoint"`
	Seconds       float64   `json:"seconds"`
	OK            bool      `json:"ok"`
}

// Key names a part in the report: layer/name, or the layer alone for a
// part with nothing to name (no datastore snapshot at all).
func (p Part) Key() string {
	if p.Name == "" {
		return p.Layer
	}
	return p.Layer + "/" + p.Name
}

// Ran reports whether the part was rehearsed (it may have failed).
func (p Part) Ran() bool { return p.NotRun == "" }

// NewID names a drill by its start time.
func NewID(t time.Time) string { return "drill-" + t.UTC().Format("20060102-150405") }

// Runner for a scheduled drill.
func ScheduleRunner(node string) string { return "schedule on " + node }

// Result is the drill's verdict in one word: PASSED, FAILED or
// INTERRUPTED.
func (r *Report) Result() string {
	switch {
	case r.Interrupted:
		return "INTERRUPTED"
	case r.Passed:
		return "PASSED"
	}
	return "FAILED"
}
