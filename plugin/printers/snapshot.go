package printers

import (
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// EtcdSnapshot is one snapshot as kubectl dr shows it.
type EtcdSnapshot struct {
	metav1.TypeMeta `json:",inline"`
	dbsnap.Snapshot `json:",inline"`
	// Location is "store", or "local" for a copy only on its node.
	Location string `json:"location"`
}

// NewEtcdSnapshot wraps a snapshot for printing.
func NewEtcdSnapshot(s *dbsnap.Snapshot) *EtcdSnapshot {
	loc := "local"
	if s.Uploaded {
		loc = "store"
	}
	return &EtcdSnapshot{
		TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "EtcdSnapshot"},
		Snapshot: *s,
		Location: loc,
	}
}

// DeepCopyObject implements runtime.Object.
func (s *EtcdSnapshot) DeepCopyObject() runtime.Object { return deepCopyJSON(s) }

// Columns implements TableView.
func (s *EtcdSnapshot) Columns(wide bool) []string { return snapshotColumns(wide) }

// Rows implements TableView.
func (s *EtcdSnapshot) Rows(wide bool) [][]string {
	return [][]string{snapshotRow(s, wide, time.Now())}
}

// EtcdSnapshotList is the output of `kubectl dr etcd snapshot ls`.
type EtcdSnapshotList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []*EtcdSnapshot `json:"items"`
}

// NewEtcdSnapshotList returns an empty list with its kind set.
func NewEtcdSnapshotList() *EtcdSnapshotList {
	return &EtcdSnapshotList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "EtcdSnapshotList"}, Items: []*EtcdSnapshot{}}
}

// DeepCopyObject implements runtime.Object.
func (l *EtcdSnapshotList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *EtcdSnapshotList) Columns(wide bool) []string { return snapshotColumns(wide) }

// Rows implements TableView.
func (l *EtcdSnapshotList) Rows(wide bool) [][]string {
	now := time.Now()
	rows := make([][]string, 0, len(l.Items))
	for _, s := range l.Items {
		rows = append(rows, snapshotRow(s, wide, now))
	}
	return rows
}

func snapshotColumns(wide bool) []string {
	cols := []string{"NAME", "NODE", "AGE", "SIZE", "REVISION", "LOCATION", "ENCRYPTED"}
	if wide {
		cols = append(cols, "STORED", "ETCD", "SCHEDULED", "BACKUP SET", "SHA256")
	}
	cols = append(cols, "ORIGIN")
	return cols
}

func snapshotRow(s *EtcdSnapshot, wide bool, now time.Time) []string {
	enc := "no"
	if s.Encrypted() {
		enc = "yes (" + s.Encryption + ")"
	}
	row := []string{s.Name, s.Node, duration.HumanDuration(now.Sub(s.Created)), HumanBytes(s.Snapshot.Size), strconv.FormatInt(s.Revision, 10), s.Location, enc}
	if wide {
		stored := "-"
		if s.StoredSize > 0 {
			stored = HumanBytes(s.StoredSize)
		}
		row = append(row, stored, orDash(s.EtcdVersion), strconv.FormatBool(s.Scheduled), orDash(s.BackupSet), s.SHA256)
	}
	return append(row, s.OriginName())
}
