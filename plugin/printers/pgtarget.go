package printers

import (
	"fmt"
	"io"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PGRestorePlan is the output of `kubectl dr pg restore --dry-run`: how the
// restore reaches its target.
type PGRestorePlan struct {
	metav1.TypeMeta `json:",inline"`
	Source          string `json:"source"`
	Node            string `json:"node"`
	TargetDir       string `json:"targetDir,omitempty"`
	Target          string `json:"target"`
	BaseBackup      string `json:"baseBackup"`
	// BaseBackupWhy says why this base backup.
	BaseBackupWhy      string         `json:"baseBackupWhy"`
	BaseBackupStartLSN string         `json:"baseBackupStartLSN"`
	BaseBackupStopLSN  string         `json:"baseBackupStopLSN"`
	BaseBackupStopTime time.Time      `json:"baseBackupStopTime"`
	Timeline           uint32         `json:"timeline"`
	TimelineSetting    string         `json:"timelineSetting"`
	Steps              []PGReplayStep `json:"steps"`
	Segments           int64          `json:"segments"`
	ReplayBytes        int64          `json:"replayBytes"`
	FetchBytes         int64          `json:"fetchBytes"`
	Missing            []string       `json:"missing,omitempty"`
	// Blocking: the target cannot be reached without the missing files.
	Blocking bool `json:"blocking,omitempty"`
	// Open: where the target lies in the WAL is known only while replaying.
	Open     bool     `json:"open,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Settings []string `json:"settings"`
}

// PGReplayStep is the replay on one timeline.
type PGReplayStep struct {
	Timeline     uint32 `json:"timeline"`
	BeginLSN     string `json:"beginLSN"`
	EndLSN       string `json:"endLSN,omitempty"`
	FirstSegment string `json:"firstSegment,omitempty"`
	LastSegment  string `json:"lastSegment,omitempty"`
	Segments     int64  `json:"segments"`
}

// NewPGRestorePlan returns an empty plan with its kind set.
func NewPGRestorePlan() *PGRestorePlan {
	return &PGRestorePlan{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "PGRestorePlan"}, Steps: []PGReplayStep{}, Settings: []string{}}
}

// DeepCopyObject implements runtime.Object.
func (p *PGRestorePlan) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// Columns implements TableView.
func (p *PGRestorePlan) Columns(bool) []string {
	return []string{"TIMELINE", "FROM", "TO", "WAL", "SEGMENTS"}
}

// Rows implements TableView: the replay per timeline.
func (p *PGRestorePlan) Rows(bool) [][]string {
	rows := [][]string{}
	for _, s := range p.Steps {
		to, wal := s.EndLSN, "-"
		if to == "" {
			to = "end of archive"
		}
		if s.FirstSegment != "" {
			wal = s.FirstSegment + ".." + s.LastSegment
		}
		rows = append(rows, []string{fmt.Sprint(s.Timeline), s.BeginLSN, to, wal, fmt.Sprint(s.Segments)})
	}
	return rows
}

// PrintText writes the plan as people read it: the base backup and why,
// the replay per timeline, what is missing, the settings.
func (p *PGRestorePlan) PrintText(w io.Writer) error {
	fmt.Fprintf(w, "restore %s to %s on %s\n", p.Source, p.Target, p.Node)
	fmt.Fprintf(w, "base backup %s: WAL %s..%s, finished %s\n  %s\n", p.BaseBackup, p.BaseBackupStartLSN, p.BaseBackupStopLSN, p.BaseBackupStopTime.UTC().Format(time.RFC3339), p.BaseBackupWhy)
	fmt.Fprintf(w, "timeline %d (recovery_target_timeline = '%s')\n\n", p.Timeline, p.TimelineSetting)
	if err := Print(w, Table, p); err != nil {
		return err
	}
	fmt.Fprintln(w)
	replay := fmt.Sprintf("replay %d segments (%s of WAL; %s fetched from the store)", p.Segments, HumanBytes(p.ReplayBytes), HumanBytes(p.FetchBytes))
	if p.Open {
		replay = "replay up to " + replay[len("replay "):] + ", as far as the target lies: it is found while replaying"
	}
	fmt.Fprintln(w, replay)
	switch {
	case len(p.Missing) == 0:
		fmt.Fprintf(w, "WAL: all %d segments present\n", p.Segments)
	case p.Blocking:
		fmt.Fprintf(w, "WAL: MISSING %s: the target cannot be reached\n", strings.Join(p.Missing, ", "))
	default:
		fmt.Fprintf(w, "WAL: missing %s (after the base backup's end)\n", strings.Join(p.Missing, ", "))
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintln(w, "settings:")
	for _, s := range p.Settings {
		fmt.Fprintln(w, "  "+s)
	}
	return nil
}

// PGWALSource is what the store holds of one source's WAL, in pg ls.
type PGWALSource struct {
	Source string `json:"source"`
	// FirstRecoverable is the earliest point a restore can stop at: the
	// end of the oldest base backup whose WAL is all in the store.
	FirstRecoverable *PGRecoverablePoint `json:"firstRecoverable,omitempty"`
	Timelines        []PGWALTimeline     `json:"timelines"`
	SegmentSize      int64               `json:"segmentSize"`
}

// PGRecoverablePoint is a base backup's end.
type PGRecoverablePoint struct {
	BaseBackup string    `json:"baseBackup"`
	LSN        string    `json:"lsn"`
	Time       time.Time `json:"time"`
	Timeline   uint32    `json:"timeline"`
}

// PGWALTimeline is one timeline's WAL.
type PGWALTimeline struct {
	Timeline       uint32       `json:"timeline"`
	Parent         uint32       `json:"parent,omitempty"`
	SwitchLSN      string       `json:"switchLSN,omitempty"`
	HistoryMissing bool         `json:"historyMissing,omitempty"`
	Ranges         []PGWALRange `json:"ranges"`
	Gaps           []PGWALRange `json:"gaps,omitempty"`
	PartialFiles   int64        `json:"partialFiles,omitempty"`
	Bytes          int64        `json:"bytes"`
}

// PGWALRange is a run of consecutive segments.
type PGWALRange struct {
	First      string    `json:"first"`
	Last       string    `json:"last"`
	Segments   int64     `json:"segments"`
	LastStored time.Time `json:"lastStored,omitempty"`
}

func (r PGWALRange) String() string {
	if r.First == r.Last {
		return r.First
	}
	return r.First + ".." + r.Last
}

// walRows are pg ls's second table: per source and timeline the WAL
// present and the gaps.
func walRows(sources []PGWALSource) [][]string {
	if len(sources) == 0 {
		return nil
	}
	rows := [][]string{nil, {"SOURCE", "TIMELINE", "BRANCHED", "WAL", "SEGMENTS", "GAPS", "SIZE"}}
	for _, s := range sources {
		for _, t := range s.Timelines {
			branched := "-"
			if t.Parent != 0 {
				branched = fmt.Sprintf("from %d at %s", t.Parent, t.SwitchLSN)
			}
			if t.HistoryMissing {
				branched = "history file missing"
			}
			var ranges, gaps []string
			var n int64
			for _, r := range t.Ranges {
				ranges, n = append(ranges, r.String()), n+r.Segments
			}
			for _, g := range t.Gaps {
				gaps = append(gaps, g.String())
			}
			if len(ranges) == 0 {
				ranges = []string{"none"}
			}
			if len(gaps) == 0 {
				gaps = []string{"none"}
			}
			rows = append(rows, []string{s.Source, fmt.Sprint(t.Timeline), branched, strings.Join(ranges, ", "), fmt.Sprint(n), strings.Join(gaps, ", "), HumanBytes(t.Bytes)})
		}
	}
	return rows
}

// FirstRecoverableLines are the lines under pg ls's tables, one per
// source: the earliest point a restore can stop at.
func FirstRecoverableLines(sources []PGWALSource) []string {
	var out []string
	for _, s := range sources {
		if p := s.FirstRecoverable; p != nil {
			out = append(out, fmt.Sprintf("%s: first recoverable point %s (timeline %d), %s: the end of base backup %s", s.Source, p.LSN, p.Timeline, p.Time.UTC().Format(time.RFC3339), p.BaseBackup))
		} else {
			out = append(out, fmt.Sprintf("%s: no recoverable point: no base backup has all its WAL in the store", s.Source))
		}
	}
	return out
}
