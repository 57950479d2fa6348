package printers

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BucketObject is one key of a backed-up bucket (kubectl dr bucket ls), or
// one version of a key (kubectl dr bucket versions).
type BucketObject struct {
	Key     string    `json:"key"`
	Time    time.Time `json:"time"`
	Deleted bool      `json:"deleted,omitempty"`
	Size    int64     `json:"size"`
	ETag    string    `json:"etag,omitempty"`
	SHA256  string    `json:"sha256,omitempty"`
	// Aside: saved by a restore before it overwrote or deleted the key.
	Aside bool `json:"aside,omitempty"`
}

// BucketObjectList is the output of bucket ls and bucket versions.
type BucketObjectList struct {
	metav1.TypeMeta `json:",inline"`
	Source          string `json:"source"`
	// At is the time listed (bucket ls); zero for the newest.
	At    *time.Time     `json:"at,omitempty"`
	Items []BucketObject `json:"items"`
}

// NewBucketObjectList returns an empty list with its kind set.
func NewBucketObjectList(source, kind string) *BucketObjectList {
	return &BucketObjectList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: kind}, Source: source, Items: []BucketObject{}}
}

// DeepCopyObject implements runtime.Object.
func (l *BucketObjectList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView.
func (l *BucketObjectList) Columns(wide bool) []string {
	c := []string{"KEY", "TIME", "SIZE", "STATE"}
	if wide {
		c = append(c, "ETAG", "SHA256")
	}
	return c
}

// Rows implements TableView.
func (l *BucketObjectList) Rows(wide bool) [][]string {
	var rows [][]string
	for _, o := range l.Items {
		state, size := "present", HumanBytes(o.Size)
		if o.Deleted {
			state, size = "deleted", "-"
		} else if o.Aside {
			state = "saved aside"
		}
		r := []string{strconv.Quote(o.Key), o.Time.UTC().Format(time.RFC3339), size, state}
		if wide {
			r = append(r, orDash(o.ETag), orDash(o.SHA256))
		}
		rows = append(rows, r)
	}
	return rows
}

// BucketChange is one object a bucket restore writes or deletes.
type BucketChange struct {
	// Action is create, overwrite or delete.
	Action string    `json:"action"`
	Key    string    `json:"key"`
	Size   int64     `json:"size"`
	Time   time.Time `json:"time,omitempty"`
}

// BucketRestore is a bucket restore's plan, and after it ran what it did.
type BucketRestore struct {
	metav1.TypeMeta `json:",inline"`
	Source          string         `json:"source"`
	To              time.Time      `json:"to"`
	Target          string         `json:"target"`
	Prefix          string         `json:"prefix,omitempty"`
	Create          int            `json:"create"`
	Overwrite       int            `json:"overwrite"`
	Delete          int            `json:"delete"`
	Unchanged       int            `json:"unchanged"`
	Bytes           int64          `json:"bytes"`
	SavedAside      int            `json:"savedAside"`
	Done            bool           `json:"done"`
	Changes         []BucketChange `json:"changes"`
}

// NewBucketRestore returns an empty plan with its kind set.
func NewBucketRestore() *BucketRestore {
	return &BucketRestore{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BucketRestore"}, Changes: []BucketChange{}}
}

// DeepCopyObject implements runtime.Object.
func (r *BucketRestore) DeepCopyObject() runtime.Object { return deepCopyJSON(r) }

// Columns implements TableView.
func (r *BucketRestore) Columns(bool) []string {
	return []string{"ACTION", "KEY", "SIZE", "VERSION TIME"}
}

// Rows implements TableView.
func (r *BucketRestore) Rows(bool) [][]string {
	var rows [][]string
	for _, c := range r.Changes {
		t, size := "-", "-"
		if c.Action != "delete" {
			t, size = c.Time.UTC().Format(time.RFC3339), HumanBytes(c.Size)
		}
		rows = append(rows, []string{c.Action, strconv.Quote(c.Key), size, t})
	}
	return rows
}

// Summary is one line on what the plan does.
func (r *BucketRestore) Summary() string {
	return fmt.Sprintf("%s as of %s into %s: %d to create, %d to overwrite, %d to delete, %d unchanged (%s to write)",
		r.Source, r.To.UTC().Format(time.RFC3339), r.Target, r.Create, r.Overwrite, r.Delete, r.Unchanged, HumanBytes(r.Bytes))
}

// BucketPass is what kubectl dr bucket backup did.
type BucketPass struct {
	metav1.TypeMeta `json:",inline"`
	Source          string    `json:"source"`
	Node            string    `json:"node"`
	Pass            time.Time `json:"pass"`
	Resumed         bool      `json:"resumed,omitempty"`
	Listed          int64     `json:"listed"`
	Unchanged       int64     `json:"unchanged"`
	Copied          int64     `json:"copied"`
	Deleted         int64     `json:"deleted"`
	BytesRead       int64     `json:"bytesRead"`
	BytesUploaded   int64     `json:"bytesUploaded"`
	DurationMs      int64     `json:"durationMs"`
}

// NewBucketPass returns an empty pass with its kind set.
func NewBucketPass() *BucketPass {
	return &BucketPass{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "BucketPass"}}
}

// DeepCopyObject implements runtime.Object.
func (p *BucketPass) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// Columns implements TableView.
func (p *BucketPass) Columns(bool) []string {
	return []string{"SOURCE", "NODE", "PASS", "LISTED", "COPIED", "DELETED", "UNCHANGED", "UPLOADED", "DURATION"}
}

// Rows implements TableView.
func (p *BucketPass) Rows(bool) [][]string {
	return [][]string{{p.Source, p.Node, p.Pass.UTC().Format(time.RFC3339), fmt.Sprint(p.Listed), fmt.Sprint(p.Copied),
		fmt.Sprint(p.Deleted), fmt.Sprint(p.Unchanged), HumanBytes(p.BytesUploaded), (time.Duration(p.DurationMs) * time.Millisecond).String()}}
}
