package printers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
)

// DrillReport is one drill's report as kubectl dr shows it.
type DrillReport struct {
	metav1.TypeMeta    `json:",inline"`
	drillreport.Report `json:",inline"`
	// SignedBy is who vouches for the report (drill show): kubectl dr or
	// the node whose schedule ran it; empty when it is not signed.
	SignedBy string `json:"signedBy,omitempty"`
}

// NewDrillReport wraps a report for printing.
func NewDrillReport(r *drillreport.Report) *DrillReport {
	return &DrillReport{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "DrillReport"}, Report: *r}
}

// DeepCopyObject implements runtime.Object.
func (r *DrillReport) DeepCopyObject() runtime.Object { return deepCopyJSON(r) }

// Columns implements TableView: one row per part, then the drill.
func (r *DrillReport) Columns(bool) []string {
	return []string{"PART", "NODE", "RESULT", "RESTORE", "RECOVERY POINT", "RPO", "DETAIL"}
}

// Rows implements TableView.
func (r *DrillReport) Rows(bool) [][]string {
	rpo := map[string]drillreport.RPO{}
	for _, x := range r.RPO {
		rpo[x.Layer+"/"+x.Name] = x
	}
	var rows [][]string
	for _, p := range r.Parts {
		result, detail := "ok", partDetail(p)
		switch {
		case !p.Ran():
			result, detail = "not run", p.NotRun
		case !p.OK:
			result = "FAILED"
		}
		point, age := "-", "-"
		if p.RecoveryPoint != nil {
			point = p.RecoveryPoint.UTC().Format(time.RFC3339)
		}
		if x, ok := rpo[p.Key()]; ok {
			age = drillreport.Human(x.Seconds)
			if !x.OK {
				age += " (over)"
			}
		}
		restore := "-"
		if p.Ran() {
			restore = drillreport.Human(p.RestoreSeconds)
		}
		rows = append(rows, []string{p.Key(), orDash(p.Node), result, restore, point, age, detail})
	}
	result := r.Result()
	rto := drillreport.Human(r.RTO.Seconds)
	if !r.RTO.Complete {
		rto = ">=" + rto
	}
	rows = append(rows, nil,
		[]string{"DRILL", "RESULT", "RTO", "RTO TARGET", "RPO TARGET", "WALL", "BACKUP", "RUN BY"},
		[]string{r.ID, result, rto, r.Targets.RTO, r.Targets.RPO, drillreport.Human(r.WallSeconds), r.Backup, r.Runner})
	return rows
}

func partDetail(p drillreport.Part) string {
	if len(p.Problems) > 0 {
		return strings.Join(p.Problems, "; ")
	}
	if p.Error != "" {
		return p.Error
	}
	var failed []string
	for _, s := range p.Steps {
		if !s.OK {
			failed = append(failed, s.Name+": "+s.Error)
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	var parts []string
	if p.FilesRestored > 0 || p.BytesRestored > 0 {
		parts = append(parts, fmt.Sprintf("%d files, %s", p.FilesRestored, HumanBytes(p.BytesRestored)))
	}
	if len(p.Checks) > 0 {
		ok := 0
		for _, c := range p.Checks {
			if c.OK {
				ok++
			}
		}
		parts = append(parts, fmt.Sprintf("%d/%d checks ok", ok, len(p.Checks)))
	}
	if p.ScratchDir != "" {
		parts = append(parts, "kept "+p.ScratchDir)
	}
	return orDash(strings.Join(parts, ", "))
}

// DrillList is the output of `kubectl dr drill ls`.
type DrillList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []*DrillReport `json:"items"`
}

// NewDrillList returns an empty list with its kind set.
func NewDrillList() *DrillList {
	return &DrillList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "DrillReportList"}, Items: []*DrillReport{}}
}

// DeepCopyObject implements runtime.Object.
func (l *DrillList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *DrillList) Columns(bool) []string {
	return []string{"ID", "RESULT", "RTO", "WORST RPO", "PARTS", "BACKUP", "RUN BY", "AGE"}
}

// Rows implements TableView.
func (l *DrillList) Rows(bool) [][]string {
	now := time.Now()
	rows := make([][]string, 0, len(l.Items))
	for _, r := range l.Items {
		result := r.Result()
		worst := "-"
		var w float64 = -1
		for _, x := range r.RPO {
			if x.Seconds > w {
				w, worst = x.Seconds, x.Layer+"/"+x.Name+" "+drillreport.Human(x.Seconds)
			}
		}
		ran, ok := 0, 0
		for _, p := range r.Parts {
			if p.Ran() {
				ran++
				if p.OK {
					ok++
				}
			}
		}
		rows = append(rows, []string{r.ID, result, drillreport.Human(r.RTO.Seconds), worst, fmt.Sprintf("%d/%d ok", ok, ran), r.Backup, r.Runner, duration.HumanDuration(now.Sub(r.Started))})
	}
	return rows
}
