package printers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BaseBackup is one base backup in `kubectl dr pg ls` and `pg prune`.
type BaseBackup struct {
	Source    string    `json:"source,omitempty"`
	Node      string    `json:"node,omitempty"`
	ID        string    `json:"id"`
	StartTime time.Time `json:"startTime"`
	StopTime  time.Time `json:"stopTime"`
	StartLSN  string    `json:"startLSN"`
	StopLSN   string    `json:"stopLSN"`
	Timeline  uint32    `json:"timeline"`
	SizeBytes int64     `json:"sizeBytes"`
	// Action is keep or remove (pg prune).
	Action string `json:"action,omitempty"`
}

// BaseBackupList is the output of `kubectl dr pg ls`, oldest first.
type BaseBackupList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []BaseBackup `json:"items"`
	// WAL is what the store holds of each listed source's WAL.
	WAL []PGWALSource `json:"wal,omitempty"`
}

// NewBaseBackupList returns an empty list with its kind set.
func NewBaseBackupList() *BaseBackupList {
	return &BaseBackupList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BaseBackupList"}, Items: []BaseBackup{}}
}

// DeepCopyObject implements runtime.Object.
func (l *BaseBackupList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *BaseBackupList) Columns(wide bool) []string {
	cols := []string{"SOURCE", "BASE BACKUP", "FINISHED", "WAL", "TIMELINE", "SIZE"}
	if wide {
		cols = append(cols, "STARTED", "NODE")
	}
	return cols
}

// Rows implements TableView.
func (l *BaseBackupList) Rows(wide bool) [][]string {
	rows := make([][]string, 0, len(l.Items))
	for _, b := range l.Items {
		row := []string{b.Source, b.ID, b.StopTime.UTC().Format(time.RFC3339), b.StartLSN + ".." + b.StopLSN,
			fmt.Sprint(b.Timeline), HumanBytes(b.SizeBytes)}
		if wide {
			row = append(row, b.StartTime.UTC().Format(time.RFC3339), b.Node)
		}
		rows = append(rows, row)
	}
	return append(rows, walRows(l.WAL)...)
}

// BaseBackupPrune is the output of `kubectl dr pg prune`.
type BaseBackupPrune struct {
	metav1.TypeMeta `json:",inline"`
	Source          string       `json:"source"`
	Node            string       `json:"node"`
	Retention       string       `json:"retention"`
	DryRun          bool         `json:"dryRun,omitempty"`
	Items           []BaseBackup `json:"items"`
	// FirstWAL is the oldest kept base backup's first WAL file; the WAL
	// before it is what was removed.
	FirstWAL           string   `json:"firstWAL,omitempty"`
	WALFilesRemoved    int64    `json:"walFilesRemoved"`
	WALBytesRemoved    int64    `json:"walBytesRemoved"`
	SnapshotsForgotten []string `json:"snapshotsForgotten,omitempty"`
}

// NewBaseBackupPrune returns an empty result with its kind set.
func NewBaseBackupPrune(source, node string) *BaseBackupPrune {
	return &BaseBackupPrune{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BaseBackupPrune"}, Source: source, Node: node, Items: []BaseBackup{}}
}

// DeepCopyObject implements runtime.Object.
func (p *BaseBackupPrune) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// Columns implements TableView.
func (p *BaseBackupPrune) Columns(bool) []string {
	return []string{"BASE BACKUP", "FINISHED", "WAL", "TIMELINE", "SIZE", "ACTION"}
}

// Rows implements TableView.
func (p *BaseBackupPrune) Rows(bool) [][]string {
	rows := make([][]string, 0, len(p.Items))
	for _, b := range p.Items {
		action := b.Action
		if p.DryRun && action == "remove" {
			action = "would remove"
		}
		rows = append(rows, []string{b.ID, b.StopTime.UTC().Format(time.RFC3339), b.StartLSN + ".." + b.StopLSN,
			fmt.Sprint(b.Timeline), HumanBytes(b.SizeBytes), action})
	}
	return rows
}

// Summary is the line under the table: what else went.
func (p *BaseBackupPrune) Summary() string {
	verb := "removed"
	if p.DryRun {
		verb = "would be removed"
	}
	return fmt.Sprintf("WAL before %s: %d files (%s) %s; %d restic snapshots %s (retention %s)",
		p.FirstWAL, p.WALFilesRemoved, HumanBytes(p.WALBytesRemoved), verb, len(p.SnapshotsForgotten), verb, p.Retention)
}
