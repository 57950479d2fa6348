package printers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// WALSource is one WAL source as kubectl dr wal status shows it.
type WALSource struct {
	Node   string `json:"node"`
	Source string `json:"source"`
	Spool  string `json:"spool,omitempty"`
	// Newest is the newest segment in the store, stored at NewestTime;
	// its age is the database's recovery point objective.
	Newest       string     `json:"newest,omitempty"`
	NewestTime   *time.Time `json:"newestTime,omitempty"`
	RPOSeconds   *float64   `json:"rpoSeconds,omitempty"`
	BacklogFiles int64      `json:"backlogFiles"`
	BacklogBytes int64      `json:"backlogBytes"`
	FreeBytes    int64      `json:"spoolFreeBytes"`
	SpoolLow     bool       `json:"spoolLow,omitempty"`
	Gaps         []string   `json:"gaps,omitempty"`
	// RefusedFiles are files in the spool the archive refused; LastError
	// says why.
	RefusedFiles int64  `json:"refusedFiles,omitempty"`
	LastError    string `json:"lastError,omitempty"`
	Error        string `json:"error,omitempty"`
}

// WALSourceList is the output of `kubectl dr wal status`.
type WALSourceList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []WALSource `json:"items"`
}

// NewWALSourceList returns an empty list with its kind set.
func NewWALSourceList() *WALSourceList {
	return &WALSourceList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "WALSourceList"}, Items: []WALSource{}}
}

// DeepCopyObject implements runtime.Object.
func (l *WALSourceList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *WALSourceList) Columns(wide bool) []string {
	c := []string{"NODE", "SOURCE", "NEWEST", "RPO", "BACKLOG", "SPOOL FREE", "GAPS", "LAST ERROR"}
	if wide {
		c = append(c, "SPOOL")
	}
	return c
}

// Rows implements TableView.
func (l *WALSourceList) Rows(wide bool) [][]string {
	var rows [][]string
	for _, s := range l.Items {
		if s.Error != "" {
			rows = append(rows, []string{s.Node, orDash(s.Source), "-", "-", "-", "-", "-", s.Error})
			continue
		}
		rpo := "-"
		if s.RPOSeconds != nil {
			rpo = duration.HumanDuration(time.Duration(*s.RPOSeconds * float64(time.Second)))
		}
		free := HumanBytes(s.FreeBytes)
		if s.SpoolLow {
			free += " LOW"
		}
		gaps := "0"
		if len(s.Gaps) > 0 {
			gaps = fmt.Sprintf("%d (%s)", len(s.Gaps), strings.Join(s.Gaps[:min(len(s.Gaps), 3)], ","))
		}
		row := []string{s.Node, s.Source, orDash(s.Newest), rpo, fmt.Sprintf("%d files, %s", s.BacklogFiles, HumanBytes(s.BacklogBytes)), free, gaps, orDash(s.LastError)}
		if wide {
			row = append(row, s.Spool)
		}
		rows = append(rows, row)
	}
	return rows
}
