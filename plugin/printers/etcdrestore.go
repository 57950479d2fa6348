package printers

import (
	"fmt"
	"io"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// EtcdRestorePreview is what `kubectl dr etcd restore` shows before it
// changes anything: the snapshot, and per resource type and namespace what
// the live cluster would lose, get back and see changed.
type EtcdRestorePreview struct {
	metav1.TypeMeta `json:",inline"`
	// Node is the server whose live member was compared.
	Node         string           `json:"node"`
	Snapshot     *dbsnap.Snapshot `json:"snapshot"`
	LiveRevision int64            `json:"liveRevision"`
	Items        []Impact         `json:"items"`
	// Digests are, by server, the sha256 of its part of the restore (the
	// snapshot and the data dir it moves aside) at the preview; each part
	// carries its own and the server refuses it when that changed.
	Digests map[string]string `json:"digests,omitempty"`
}

// Impact is what a restore would do to one resource type in one namespace
// (field names as the JSON output has always had them).
type Impact struct {
	// GroupResource is "configmaps", "deployments", "widgets.example.com";
	// keys outside /registry/ are "(non-Kubernetes keys)".
	GroupResource string
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Disappear: live now, not in the snapshot. Reappear: in the snapshot,
	// not live. Change: both, different bytes.
	Disappear, Reappear, Change, Unchanged int64
	// Names of the objects in each class, sorted, capped by the agent.
	DisappearNames, ReappearNames, ChangeNames []string
}

// NewEtcdRestorePreview returns the view with its kind set.
func NewEtcdRestorePreview(node string, snap *dbsnap.Snapshot, liveRev int64, items []Impact) *EtcdRestorePreview {
	if items == nil {
		items = []Impact{}
	}
	return &EtcdRestorePreview{
		TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "EtcdRestorePreview"},
		Node:     node, Snapshot: snap, LiveRevision: liveRev, Items: items,
	}
}

// DeepCopyObject implements runtime.Object.
func (p *EtcdRestorePreview) DeepCopyObject() runtime.Object { return deepCopyJSON(p) }

// Columns implements TableView.
func (p *EtcdRestorePreview) Columns(bool) []string {
	return []string{"RESOURCE", "NAMESPACE", "DISAPPEAR", "REAPPEAR", "CHANGE", "UNCHANGED"}
}

// Rows implements TableView: rows where something would differ; wide
// shows every row.
func (p *EtcdRestorePreview) Rows(wide bool) [][]string {
	var rows [][]string
	for _, r := range p.Items {
		if !wide && r.Disappear+r.Reappear+r.Change == 0 {
			continue
		}
		rows = append(rows, []string{r.GroupResource, orDash(r.Namespace),
			fmt.Sprint(r.Disappear), fmt.Sprint(r.Reappear), fmt.Sprint(r.Change), fmt.Sprint(r.Unchanged)})
	}
	return rows
}

// PrintHeader writes which snapshot is compared with what.
func (p *EtcdRestorePreview) PrintHeader(w io.Writer) {
	s := p.Snapshot
	fmt.Fprintf(w, "Snapshot %s of node %s, taken %s at revision %d; live cluster at revision %d (read on %s).\n",
		s.Name, s.Node, s.Created.Local().Format("2006-01-02 15:04:05 MST"), s.Revision, p.LiveRevision, p.Node)
	var nodes []string
	for n := range p.Digests {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var parts []string
	for _, n := range nodes {
		parts = append(parts, n+" "+ShortDigest(p.Digests[n]))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "Preview: %s.\n", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
}

// PrintNames lists the objects in each class, and a total.
func (p *EtcdRestorePreview) PrintNames(w io.Writer) {
	var dis, re, ch int64
	for _, r := range p.Items {
		dis, re, ch = dis+r.Disappear, re+r.Reappear, ch+r.Change
		for _, c := range []struct {
			verb  string
			n     int64
			names []string
		}{{"disappear", r.Disappear, r.DisappearNames}, {"reappear", r.Reappear, r.ReappearNames}, {"change", r.Change, r.ChangeNames}} {
			if c.n == 0 {
				continue
			}
			where := r.GroupResource
			if r.Namespace != "" {
				where += " in " + r.Namespace
			}
			more := ""
			if int64(len(c.names)) < c.n {
				more = fmt.Sprintf(" and %d more", c.n-int64(len(c.names)))
			}
			fmt.Fprintf(w, "  would %s: %s: %s%s\n", c.verb, where, strings.Join(c.names, ", "), more)
		}
	}
	fmt.Fprintf(w, "\n%d object(s) would disappear, %d reappear, %d change.\n", dis, re, ch)
}
