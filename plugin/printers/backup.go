package printers

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
)

// BackupSet is one backup set as kubectl dr shows it.
type BackupSet struct {
	metav1.TypeMeta `json:",inline"`
	backupset.Set   `json:",inline"`
}

// NewBackupSet wraps a set for printing.
func NewBackupSet(s *backupset.Set) *BackupSet {
	return &BackupSet{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BackupSet"}, Set: *s}
}

// DeepCopyObject implements runtime.Object.
func (s *BackupSet) DeepCopyObject() runtime.Object { return deepCopyJSON(s) }

// Columns implements TableView.
func (s *BackupSet) Columns(wide bool) []string { return setColumns(wide) }

// Rows implements TableView.
func (s *BackupSet) Rows(wide bool) [][]string { return [][]string{setRow(s, wide, time.Now())} }

// BackupSetList is the output of `kubectl dr backup ls`.
type BackupSetList struct {
	metav1.TypeMeta `json:",inline"`
	Items           []*BackupSet `json:"items"`
}

// NewBackupSetList returns an empty list with its kind set.
func NewBackupSetList() *BackupSetList {
	return &BackupSetList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BackupSetList"}, Items: []*BackupSet{}}
}

// DeepCopyObject implements runtime.Object.
func (l *BackupSetList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *BackupSetList) Columns(wide bool) []string { return setColumns(wide) }

// Rows implements TableView.
func (l *BackupSetList) Rows(wide bool) [][]string {
	now := time.Now()
	rows := make([][]string, 0, len(l.Items))
	for _, s := range l.Items {
		rows = append(rows, setRow(s, wide, now))
	}
	return rows
}

func setColumns(wide bool) []string {
	c := []string{"NAME", "PHASE", "AGE", "ETCD", "FILES", "SIZE", "DURATION"}
	if wide {
		c = append(c, "PVCS", "ERRORS")
	}
	return c
}

func setRow(s *BackupSet, wide bool, now time.Time) []string {
	etcd := "-"
	if s.Etcd != nil {
		etcd = s.Etcd.Snapshot
		if s.Etcd.Error != "" {
			etcd = "failed"
		}
	}
	var ok, total int
	var bytes, nfiles int64
	var pvcs, errs []string
	for _, p := range s.Files {
		total++
		if !p.Failed() {
			ok++
		} else {
			errs = append(errs, p.Node+": "+p.Error)
		}
		bytes += p.Bytes
		nfiles += p.Files
		for _, c := range p.PVCs {
			pvcs = append(pvcs, p.Node+":"+c)
		}
	}
	if s.Etcd != nil && s.Etcd.Error != "" {
		errs = append(errs, "etcd: "+s.Etcd.Error)
	}
	if s.Error != "" {
		errs = append(errs, s.Error)
	}
	filesCol := "-"
	if total > 0 {
		filesCol = fmt.Sprintf("%d/%d nodes, %d files", ok, total, nfiles)
	}
	size := "-"
	if total > 0 {
		size = HumanBytes(bytes)
	}
	row := []string{s.ID, s.Phase, duration.HumanDuration(now.Sub(s.Started)), etcd, filesCol, size, s.Finished.Sub(s.Started).Round(time.Second).String()}
	if wide {
		row = append(row, orDash(strings.Join(pvcs, ",")), orDash(strings.Join(errs, "; ")))
	}
	return row
}

// DescribeBackupSet writes the set part by part, kubectl describe style.
func DescribeBackupSet(w io.Writer, s *backupset.Set) {
	fmt.Fprintf(w, "Name:      %s\n", s.ID)
	fmt.Fprintf(w, "Phase:     %s\n", s.Phase)
	fmt.Fprintf(w, "Started:   %s\n", s.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Finished:  %s (%s)\n", s.Finished.UTC().Format(time.RFC3339), s.Finished.Sub(s.Started).Round(100*time.Millisecond))
	if s.Error != "" {
		fmt.Fprintf(w, "Error:     %s\n", s.Error)
	}
	if s.Etcd != nil {
		fmt.Fprintf(w, "etcd:\n")
		if s.Etcd.Error != "" {
			fmt.Fprintf(w, "  Node:      %s\n  Error:     %s\n", orDash(s.Etcd.Node), s.Etcd.Error)
		} else {
			fmt.Fprintf(w, "  Snapshot:  %s\n  Node:      %s\n  Revision:  %d\n  Size:      %s\n", s.Etcd.Snapshot, s.Etcd.Node, s.Etcd.Revision, HumanBytes(s.Etcd.Size))
		}
	}
	if len(s.WAL) > 0 {
		fmt.Fprintf(w, "WAL:\n")
		for _, m := range s.WAL {
			if m.Error != "" {
				fmt.Fprintf(w, "  %s: %s\n", m.Node, m.Error)
				continue
			}
			fmt.Fprintf(w, "  %s on %s: at LSN %s, archived up to %s\n", m.Source, m.Node, orDash(m.LSN), orDash(m.Segment))
		}
	}
	if len(s.Buckets) > 0 {
		fmt.Fprintf(w, "Buckets:\n")
		for _, b := range s.Buckets {
			if b.Error != "" {
				fmt.Fprintf(w, "  %s on %s: %s\n", orDash(b.Source), orDash(b.Node), b.Error)
				continue
			}
			fmt.Fprintf(w, "  %s on %s: pass of %s, %d objects, %d copied (%s stored), %d deleted\n", b.Source, b.Node, b.Pass.UTC().Format(time.RFC3339), b.Listed, b.Copied, HumanBytes(b.BytesUploaded), b.Deleted)
		}
	}
	if len(s.Files) > 0 {
		fmt.Fprintf(w, "Files:\n")
		for _, p := range s.Files {
			fmt.Fprintf(w, "  %s:\n", p.Node)
			if p.Failed() {
				fmt.Fprintf(w, "    Error:     %s\n", p.Error)
				continue
			}
			fmt.Fprintf(w, "    Snapshot:  %s\n", p.SnapshotID)
			fmt.Fprintf(w, "    Paths:     %s\n", strings.Join(p.Paths, ", "))
			fmt.Fprintf(w, "    Files:     %s (%s, %s new)\n", strconv.FormatInt(p.Files, 10), HumanBytes(p.Bytes), HumanBytes(p.BytesAdded))
			if len(p.PVCs) > 0 {
				fmt.Fprintf(w, "    PVCs:      %s\n", strings.Join(p.PVCs, ", "))
			}
			for _, warn := range p.Warnings {
				fmt.Fprintf(w, "    Warning:   %s\n", warn)
			}
		}
	}
}
