package printers

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Changes of an object between a restore point and the live cluster.
const (
	DiffChanged = "changed"
	// DiffAdded is live and not in the restore point: made since.
	DiffAdded = "added"
	// DiffRemoved is in the restore point and not live: deleted since.
	DiffRemoved = "removed"
)

// ObjectDiffGroup counts one kind in one namespace.
type ObjectDiffGroup struct {
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind"`
	Unchanged int    `json:"unchanged"`
	Changed   int    `json:"changed"`
	Added     int    `json:"added"`
	Removed   int    `json:"removed"`
}

// ObjectDiffItem is one object that differs.
type ObjectDiffItem struct {
	// Change is changed, added or removed.
	Change     string `json:"change"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// Diff is a unified diff of the object as a restore would apply it
	// (---, the restore point) against the live one (+++), with --details.
	Diff string `json:"diff,omitempty"`
}

// ObjectDiff is the output of `kubectl dr objects diff`.
type ObjectDiff struct {
	metav1.TypeMeta `json:",inline"`
	Snapshot        string            `json:"snapshot"`
	Revision        int64             `json:"revision"`
	Groups          []ObjectDiffGroup `json:"groups"`
	Items           []ObjectDiffItem  `json:"items"`
	Unchanged       int               `json:"unchanged"`
	Changed         int               `json:"changed"`
	Added           int               `json:"added"`
	Removed         int               `json:"removed"`
}

// NewObjectDiff returns an empty diff with its kind set.
func NewObjectDiff(snapshot string, revision int64) *ObjectDiff {
	return &ObjectDiff{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "ObjectDiff"}, Snapshot: snapshot, Revision: revision, Groups: []ObjectDiffGroup{}, Items: []ObjectDiffItem{}}
}

// DeepCopyObject implements runtime.Object.
func (d *ObjectDiff) DeepCopyObject() runtime.Object { return deepCopyJSON(d) }

// Summary is one line of totals.
func (d *ObjectDiff) Summary() string {
	return fmt.Sprintf("%s against the live cluster: %d unchanged, %d changed, %d added since, %d removed since", d.Snapshot, d.Unchanged, d.Changed, d.Added, d.Removed)
}

// Columns are the first table's header: one row per namespace and kind.
func (d *ObjectDiff) Columns(bool) []string {
	return []string{"NAMESPACE", "KIND", "UNCHANGED", "CHANGED", "ADDED", "REMOVED"}
}

// Rows are the groups, then a table of the objects that differ.
func (d *ObjectDiff) Rows(wide bool) [][]string {
	var rows [][]string
	for _, g := range d.Groups {
		rows = append(rows, []string{dash(g.Namespace), g.Kind, fmt.Sprint(g.Unchanged), fmt.Sprint(g.Changed), fmt.Sprint(g.Added), fmt.Sprint(g.Removed)})
	}
	if len(d.Items) == 0 {
		return rows
	}
	head := []string{"CHANGE", "KIND", "NAMESPACE", "NAME"}
	if wide {
		head = append(head, "APIVERSION")
	}
	rows = append(rows, nil, head)
	for _, it := range d.Items {
		r := []string{it.Change, it.Kind, dash(it.Namespace), it.Name}
		if wide {
			r = append(r, it.APIVersion)
		}
		rows = append(rows, r)
	}
	return rows
}
