package printers

import (
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// RestorePreview is what a file restore would do on one node.
type RestorePreview struct {
	Node      string       `json:"node"`
	Snapshot  string       `json:"snapshot"`
	Target    string       `json:"target"`
	Paths     []string     `json:"paths"`
	Create    PreviewCount `json:"create"`
	Change    PreviewCount `json:"change"`
	Unchanged PreviewCount `json:"unchanged"`
	// NotInBackup are files on the node the backup does not hold; the
	// restore leaves them alone.
	NotInBackup PreviewCount    `json:"notInBackup"`
	Changes     []PreviewChange `json:"changes"`
	Truncated   bool            `json:"truncated,omitempty"`
	// Digest is the agent's sha256 over what this preview shows and the
	// restore would act on; the restore carries it, and the agent refuses
	// when the node's files no longer give the same.
	Digest string `json:"digest,omitempty"`
	Error  string `json:"error,omitempty"`
}

// PreviewCount is files and bytes.
type PreviewCount struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// PreviewChange is one file created or replaced.
type PreviewChange struct {
	Action string `json:"action"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
}

// NewRestorePreview converts the agent's answer.
func NewRestorePreview(node string, p *agentv1.RestorePreview) RestorePreview {
	out := RestorePreview{
		Node: node, Snapshot: p.SnapshotId, Target: p.TargetDir, Paths: p.Paths,
		Create:      PreviewCount{p.CreateFiles, p.CreateBytes},
		Change:      PreviewCount{p.ChangeFiles, p.ChangeBytes},
		Unchanged:   PreviewCount{p.UnchangedFiles, p.UnchangedBytes},
		NotInBackup: PreviewCount{p.ExtraFiles, p.ExtraBytes},
		Truncated:   p.Truncated,
		Digest:      p.Digest,
		Changes:     []PreviewChange{},
	}
	for _, c := range p.Changes {
		a := "create"
		if c.Kind == agentv1.FileChange_KIND_CHANGE {
			a = "replace"
		}
		out.Changes = append(out.Changes, PreviewChange{Action: a, Path: c.Path, Size: c.SizeBytes})
	}
	return out
}

// RestorePreviewList is the output of `kubectl dr restore --dry-run`.
type RestorePreviewList struct {
	metav1.TypeMeta `json:",inline"`
	Backup          string           `json:"backup"`
	Items           []RestorePreview `json:"items"`
}

// NewRestorePreviewList returns an empty list with its kind set.
func NewRestorePreviewList(backup string) *RestorePreviewList {
	return &RestorePreviewList{TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "RestorePreviewList"}, Backup: backup, Items: []RestorePreview{}}
}

// DeepCopyObject implements runtime.Object.
func (l *RestorePreviewList) DeepCopyObject() runtime.Object { return deepCopyJSON(l) }

// Columns implements TableView: the summary per node.
func (l *RestorePreviewList) Columns(wide bool) []string {
	return []string{"NODE", "CREATE", "REPLACE", "UNCHANGED", "LEFT ALONE", "TARGET", "PREVIEW"}
}

// Rows implements TableView.
func (l *RestorePreviewList) Rows(wide bool) [][]string {
	var rows [][]string
	for _, p := range l.Items {
		if p.Error != "" {
			rows = append(rows, []string{p.Node, "error", "", "", "", p.Error, ""})
			continue
		}
		rows = append(rows, []string{p.Node, count(p.Create), count(p.Change), count(p.Unchanged), count(p.NotInBackup), p.Target, ShortDigest(p.Digest)})
	}
	return rows
}

// ShortDigest is a preview's digest as a table shows it: sha256:ab12cd34ef56….
// -o json and yaml carry it in full.
func ShortDigest(d string) string {
	switch {
	case d == "":
		return "-"
	case len(d) > 12:
		d = d[:12] + "…"
	}
	return "sha256:" + d
}

func count(c PreviewCount) string {
	return fmt.Sprintf("%d (%s)", c.Files, HumanBytes(c.Bytes))
}

// PrintChanges lists each file a restore creates or replaces, per node.
func (l *RestorePreviewList) PrintChanges(w io.Writer) {
	for _, p := range l.Items {
		for _, c := range p.Changes {
			fmt.Fprintf(w, "%s\t%-7s %s (%s)\n", p.Node, c.Action, c.Path, HumanBytes(c.Size))
		}
		if p.Truncated {
			fmt.Fprintf(w, "%s\t... more changes than listed\n", p.Node)
		}
	}
}
