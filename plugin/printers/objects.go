package printers

import (
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// StoredObject is one object a restore point holds.
type StoredObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Namespace  string            `json:"namespace,omitempty"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Created    *time.Time        `json:"created,omitempty"`
	// Owner is the controller owning it, KIND/NAME.
	Owner string `json:"owner,omitempty"`
	// Error says why the stored value could not be decoded.
	Error string `json:"error,omitempty"`
}

// StoredObjectList is the output of `kubectl dr objects ls`.
type StoredObjectList struct {
	metav1.TypeMeta `json:",inline"`
	Snapshot        string         `json:"snapshot"`
	Revision        int64          `json:"revision"`
	Items           []StoredObject `json:"items"`
	// at is the snapshot's time: ages are as of then.
	at time.Time
}

// NewStoredObjectList returns an empty list with its kind set.
func NewStoredObjectList(snapshot string, revision int64, at time.Time) *StoredObjectList {
	return &StoredObjectList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "StoredObjectList"}, Snapshot: snapshot, Revision: revision, Items: []StoredObject{}, at: at}
}

// DeepCopyObject implements runtime.Object.
func (l *StoredObjectList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns are the table's header.
func (l *StoredObjectList) Columns(wide bool) []string {
	c := []string{"NAMESPACE", "KIND", "NAME", "AGE"}
	if wide {
		c = append(c, "APIVERSION", "OWNER", "LABELS")
	}
	return c
}

// Rows are one per object; AGE is as of the snapshot.
func (l *StoredObjectList) Rows(wide bool) [][]string {
	var rows [][]string
	for _, o := range l.Items {
		age := "<unknown>"
		if o.Created != nil && !l.at.IsZero() {
			age = shortDuration(l.at.Sub(*o.Created))
		}
		if o.Error != "" {
			age = "error: " + o.Error
		}
		ns := o.Namespace
		if ns == "" {
			ns = "-"
		}
		r := []string{ns, o.Kind, o.Name, age}
		if wide {
			var labels []string
			for k, v := range o.Labels {
				labels = append(labels, k+"="+v)
			}
			sort.Strings(labels)
			r = append(r, o.APIVersion, dash(o.Owner), dash(strings.Join(labels, ",")))
		}
		rows = append(rows, r)
	}
	return rows
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Actions of an object restore.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionSkip   = "skip"
	ActionFail   = "fail"
)

// ObjectRestoreItem is what a restore does, or did, with one object.
type ObjectRestoreItem struct {
	// Action is create, update, skip or fail; in a dry run what would be
	// done.
	Action     string `json:"action"`
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// FromNamespace is the namespace in the snapshot when mapped.
	FromNamespace string `json:"fromNamespace,omitempty"`
	// Reason says why it was skipped or failed.
	Reason string `json:"reason,omitempty"`
	// Done is false in a dry run.
	Done bool `json:"done"`
}

// ObjectRestore is the plan, or the outcome, of `kubectl dr objects
// restore`: items in the order they are applied.
type ObjectRestore struct {
	metav1.TypeMeta `json:",inline"`
	Snapshot        string              `json:"snapshot"`
	DryRun          bool                `json:"dryRun"`
	Items           []ObjectRestoreItem `json:"items"`
	Created         int                 `json:"created"`
	Updated         int                 `json:"updated"`
	Skipped         int                 `json:"skipped"`
	Failed          int                 `json:"failed"`
}

// NewObjectRestore returns an empty plan with its kind set.
func NewObjectRestore(snapshot string, dryRun bool) *ObjectRestore {
	kind := "ObjectRestore"
	if dryRun {
		kind = "ObjectRestorePlan"
	}
	return &ObjectRestore{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: kind}, Snapshot: snapshot, DryRun: dryRun, Items: []ObjectRestoreItem{}}
}

// Count fills the totals from the items.
func (r *ObjectRestore) Count() {
	r.Created, r.Updated, r.Skipped, r.Failed = 0, 0, 0, 0
	for _, it := range r.Items {
		switch it.Action {
		case ActionCreate:
			r.Created++
		case ActionUpdate:
			r.Updated++
		case ActionSkip:
			r.Skipped++
		case ActionFail:
			r.Failed++
		}
	}
}

// Summary is one line of totals.
func (r *ObjectRestore) Summary() string {
	verb := "restored"
	if r.DryRun {
		verb = "would restore (dry run)"
	}
	return fmt.Sprintf("%s from %s: %d created, %d updated, %d skipped, %d failed", verb, r.Snapshot, r.Created, r.Updated, r.Skipped, r.Failed)
}

// DeepCopyObject implements runtime.Object.
func (r *ObjectRestore) DeepCopyObject() runtime.Object { return deepCopyJSON(r) }

// Columns are the table's header.
func (r *ObjectRestore) Columns(wide bool) []string {
	c := []string{"ACTION", "KIND", "NAMESPACE", "NAME", "REASON"}
	if wide {
		c = append(c, "APIVERSION", "FROM NAMESPACE")
	}
	return c
}

// Rows are one per object, in apply order.
func (r *ObjectRestore) Rows(wide bool) [][]string {
	var rows [][]string
	for _, it := range r.Items {
		action := it.Action
		if it.Action == ActionCreate && it.Done {
			action = "created"
		} else if it.Action == ActionUpdate && it.Done {
			action = "updated"
		} else if it.Action == ActionSkip {
			action = "skipped"
		} else if it.Action == ActionFail {
			action = "failed"
		}
		row := []string{action, it.Kind, dash(it.Namespace), it.Name, dash(it.Reason)}
		if wide {
			row = append(row, it.APIVersion, dash(it.FromNamespace))
		}
		rows = append(rows, row)
	}
	return rows
}
