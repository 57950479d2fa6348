package objects

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	filerestore "github.com/kubectl-dr/kubectl-dr/plugin/cmd/restore"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// claimData is where the files of one claim the restore brings back come
// from.
type claimData struct {
	step *step
	// from is the claim in the snapshot, to the one restored (NS/NAME).
	from, to string
	part     backupset.FilePart
	// path is the claim's directory in the backup: its volume's path in
	// the snapshot's PersistentVolume; empty when the snapshot holds no
	// such volume (the agent then finds the directory by the claim).
	path string
	// node is where the old volume was, by its node affinity.
	node string
}

// volumePath is a hostPath or local volume's directory and the node its
// affinity names ("" when none).
func volumePath(pv *unstructured.Unstructured) (path, node string) {
	if p, ok, _ := unstructured.NestedString(pv.Object, "spec", "hostPath", "path"); ok {
		path = p
	} else if p, ok, _ := unstructured.NestedString(pv.Object, "spec", "local", "path"); ok {
		path = p
	}
	terms, _, _ := unstructured.NestedSlice(pv.Object, "spec", "nodeAffinity", "required", "nodeSelectorTerms")
	for _, t := range terms {
		exprs, _, _ := unstructured.NestedSlice(t.(map[string]any), "matchExpressions")
		for _, e := range exprs {
			m, _ := e.(map[string]any)
			values, _ := m["values"].([]any)
			if m["key"] == "kubernetes.io/hostname" && m["operator"] == "In" && len(values) == 1 {
				node, _ = values[0].(string)
			}
		}
	}
	return path, node
}

// claimsWithData are the claim steps whose files a restore brings back:
// created, updated, or left as they exist.
func claimsWithData(steps []*step) []*step {
	var out []*step
	for _, s := range steps {
		if s.gvk.Group != "" || s.gvk.Kind != "PersistentVolumeClaim" || s.src == nil {
			continue
		}
		switch a := s.item.Action; {
		case a == printers.ActionCreate || a == printers.ActionUpdate:
		case a == printers.ActionSkip && strings.HasPrefix(s.item.Reason, "exists"):
		default:
			continue
		}
		out = append(out, s)
	}
	return out
}

// planData finds the backup set's files of each claim the restore brings
// back, before anything is applied: a claim the set holds no files of is
// an error that lists the claims it does hold.
func planData(set *backupset.Set, steps []*step, pvs map[string]*unstructured.Unstructured) ([]*claimData, error) {
	var out []*claimData
	var missing []string
	for _, s := range claimsWithData(steps) {
		from := s.src.GetNamespace() + "/" + s.src.GetName()
		d := &claimData{step: s, from: from, to: s.obj.GetNamespace() + "/" + s.obj.GetName()}
		if vol, _, _ := unstructured.NestedString(s.src.Object, "spec", "volumeName"); vol != "" {
			if pv, ok := pvs[vol]; ok {
				d.path, d.node = volumePath(pv)
			}
		}
		var parts []backupset.FilePart
		for _, p := range set.Files {
			if p.SnapshotID == "" {
				continue
			}
			for _, c := range p.PVCs {
				if c == from {
					parts = append(parts, p)
				}
			}
		}
		switch {
		case len(parts) == 0:
			missing = append(missing, from)
			continue
		case len(parts) > 1 && d.node != "":
			for _, p := range parts {
				if p.Node == d.node {
					parts = []backupset.FilePart{p}
				}
			}
		}
		if len(parts) > 1 {
			var nodes []string
			for _, p := range parts {
				nodes = append(nodes, p.Node)
			}
			return nil, fmt.Errorf("backup %s holds files of PVC %s from several nodes (%s) and its volume names none of them: restore them with kubectl dr restore %s --pvc %s --node NODE", set.ID, from, strings.Join(nodes, ", "), set.ID, from)
		}
		d.part = parts[0]
		out = append(out, d)
	}
	if len(missing) > 0 {
		var held []string
		for _, p := range set.Files {
			held = append(held, p.PVCs...)
		}
		return nil, cmdutil.UsageError("backup %s holds no files of PVC %s (its PVCs: %s): restore without --with-data, or choose other claims; nothing was restored", set.ID, strings.Join(missing, ", "), list(held))
	}
	return out, nil
}

// describeData says, for the plan, where each claim's files come from and
// where they will go.
func (o *RestoreOptions) describeData(data []*claimData) {
	for _, d := range data {
		src := d.path
		if src == "" {
			src = "its directory"
		}
		fmt.Fprintf(o.ErrOut, "with --with-data: PVC %s's files (backup %s, node %s, %s) go into the volume PVC %s is bound to, once it is bound\n", d.from, o.Backup, d.part.Node, src, d.to)
	}
}

// restoreData waits for each restored claim to be bound and restores its
// files into its volume through the file restore (preview, confirmation
// unless --yes, the replaced files moved aside). It returns the claims
// whose files were not restored, with the reason.
func (o *RestoreOptions) restoreData(ctx context.Context, data []*claimData) error {
	cs, err := o.f.Clientset()
	if err != nil {
		return err
	}
	var jobs []filerestore.Job
	var notDone []string
	var nodes agentclient.Nodes
	for _, d := range data {
		if d.step.item.Action == printers.ActionFail {
			notDone = append(notDone, fmt.Sprintf("PVC %s: its files were not restored: the claim failed to restore", d.to))
			continue
		}
		into, node, err := o.boundVolume(ctx, cs, d)
		if err != nil {
			notDone = append(notDone, fmt.Sprintf("PVC %s: its files were not restored: %v", d.to, err))
			continue
		}
		if node == "" {
			node = d.part.Node
		}
		if nodes == nil {
			if nodes, err = agentclient.Connect(ctx, o.f.AgentOptions(nil)); err != nil {
				return fmt.Errorf("the objects are restored; reach the agents to restore the claims' files: %w", err)
			}
			defer nodes.Close()
		}
		n, ok := nodes.Find(node)
		if !ok || !n.Ready() {
			why := "no agent answers for it"
			if ok {
				why = agentclient.Explain(n.Err)
			}
			notDone = append(notDone, fmt.Sprintf("PVC %s: its files were not restored: its volume is on node %s: %s", d.to, node, why))
			continue
		}
		t := &agentv1.FileRestoreTarget{BackupSet: o.Backup, SourceNode: d.part.Node, IntoDir: into}
		if d.path != "" {
			t.Paths = []string{d.path}
		} else {
			t.Pvc = d.from
		}
		jobs = append(jobs, filerestore.Job{Node: n, Target: t, Label: node + " " + d.to})
	}
	if len(jobs) > 0 {
		if err := filerestore.Files(ctx, o.IOStreams, o.Backup, jobs, o.Yes, o.Output); err != nil {
			notDone = append(notDone, err.Error())
		}
	}
	for _, s := range notDone {
		fmt.Fprintln(o.Out, s)
	}
	if len(notDone) > 0 {
		return cmdutil.Partial("the objects are restored, the files of %d of %d claim(s) are not: %s", len(notDone), len(data), strings.Join(notDone, "; "))
	}
	return nil
}

// boundVolume waits for the restored claim to be bound and returns its
// volume's directory and node.
func (o *RestoreOptions) boundVolume(ctx context.Context, cs kubernetes.Interface, d *claimData) (dir, node string, err error) {
	ns, name, _ := strings.Cut(d.to, "/")
	wait, cancel := context.WithTimeout(ctx, o.BindTimeout)
	defer cancel()
	var pvc *corev1.PersistentVolumeClaim
	for {
		pvc, err = cs.CoreV1().PersistentVolumeClaims(ns).Get(wait, name, metav1.GetOptions{})
		if err == nil && pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName != "" {
			break
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return "", "", ctx.Err()
			}
			phase := "not found"
			if pvc != nil {
				phase = string(pvc.Status.Phase)
			}
			return "", "", fmt.Errorf("the claim is not bound after %s (%s; a storage class that binds on first use binds when a pod uses it): once it is bound, run this restore again with --kind pvc --name %s --with-data (the claim is kept, its files restored)", o.BindTimeout, phase, name)
		case <-time.After(500 * time.Millisecond):
		}
	}
	pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("read its volume %s: %w", pvc.Spec.VolumeName, err)
	}
	u, err := toUnstructured(pv)
	if err != nil {
		return "", "", err
	}
	dir, node = volumePath(u)
	if dir == "" {
		return "", "", errors.New("its volume " + pv.Name + " is neither a hostPath nor a local volume: the agents reach only those; restore its files with kubectl dr restore " + o.Backup + " --pvc " + d.from + " --target DIR and copy them in")
	}
	return dir, node, nil
}

func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
