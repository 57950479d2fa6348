package restore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Options for `kubectl dr restore`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Backup string
	Nodes  []string
	ToNode string
	Paths  []string
	PVC    string
	Target string
	DryRun bool
	Yes    bool
	Output string
	// AllowUnsigned restores from a set whose record carries no
	// signature.
	AllowUnsigned bool
}

// NewCmdRestore returns `kubectl dr restore`.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore BACKUP [--node N] [--path P | --pvc NS/NAME] [--target DIR] [--dry-run] [--yes]",
		Short: "Restore files from a backup set, after a preview",
		Long: `Restores the files of a backup set on the nodes they came from (or --to-node).
Every restore first shows what it would do on each node: files it would
create, files it would replace, files already identical, and files that are
there now but not in the backup (those are left alone, never deleted).
--dry-run stops there; otherwise the restore asks for confirmation, or needs
--yes when not run from a terminal.

Restoring in place (no --target), each file about to be replaced is first
moved into a dated directory under the agent's state dir
(/var/lib/dr-agent/restore-aside/...), never deleted. With --target DIR the
files land below DIR at their original paths.

The etcd part of a set is restored with kubectl dr etcd restore.`,
		Example: `  # what would change on every node
  kubectl dr restore backup-20261121-101500 --dry-run
  # one PVC, in place
  kubectl dr restore backup-20261121-101500 --pvc shop/data-postgres-0 --yes
  # a directory into a scratch dir on another node
  kubectl dr restore nightly --node server-1 --path /var/lib/rancher/k3s/storage/x --target /tmp/r --to-node server-2`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("restore takes one BACKUP name (kubectl dr backup ls lists them)")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.BackupSetNames(f)),
	}
	f.BindStoreFlags(cmd.Flags())
	cmd.Flags().StringArrayVar(&o.Nodes, "node", nil, "restore only this node's files (repeatable)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	cmd.Flags().StringVar(&o.ToNode, "to-node", "", "restore onto this node instead of the one the files came from (needs exactly one source node)")
	cmd.Flags().StringArrayVar(&o.Paths, "path", nil, "restore only this file or directory (absolute, as backed up; repeatable)")
	cmd.Flags().StringVar(&o.PVC, "pvc", "", "restore only this PVC's directory (NAMESPACE/NAME)")
	cmd.Flags().StringVar(&o.Target, "target", "", "restore below this directory on the node instead of in place")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "show what would be restored and stop")
	cmd.Flags().BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage)
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "restore without asking after the preview")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes BACKUP.
func (o *Options) Complete(_ *cobra.Command, args []string) error {
	o.Backup = args[0]
	return nil
}

// Validate checks the flags before anything is read.
func (o *Options) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if err := backupset.ValidateID(o.Backup); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	if o.PVC != "" && len(o.Paths) > 0 {
		return cmdutil.UsageError("--pvc and --path exclude each other")
	}
	if o.PVC != "" {
		ns, name, ok := strings.Cut(o.PVC, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return cmdutil.UsageError("--pvc %q: want NAMESPACE/NAME", o.PVC)
		}
	}
	for _, p := range o.Paths {
		if !filepath.IsAbs(p) {
			return cmdutil.UsageError("--path %q: must be absolute, as it was backed up", p)
		}
		if slices.Contains(strings.Split(p, "/"), "..") {
			return cmdutil.UsageError("--path %q: \"..\" is not allowed; give the path as it was backed up", p)
		}
	}
	if o.Target != "" && !filepath.IsAbs(o.Target) {
		return cmdutil.UsageError("--target %q: must be an absolute path on the node", o.Target)
	}
	return nil
}

// job is one restore on one node: what, where it runs, its label in the
// preview (the node's name, and the claim when several go to one node)
// and the digest of the preview shown for it.
type job struct {
	target *agentv1.FileRestoreTarget
	node   *agentclient.Node
	label  string
	digest string
}

// Job is one file restore for Files: the agent that runs it, what it
// restores and what the preview calls it.
type Job struct {
	Node   *agentclient.Node
	Target *agentv1.FileRestoreTarget
	Label  string
}

// Files previews the jobs, prints the previews, confirms (unless yes) and
// restores: what kubectl dr restore does once it has picked the nodes,
// for verbs that restore files as part of their work (objects restore
// --with-data).
func Files(ctx context.Context, streams genericiooptions.IOStreams, backup string, jobs []Job, yes bool, output string) error {
	o := &Options{IOStreams: streams, Backup: backup, Yes: yes, Output: output}
	var js []job
	for _, j := range jobs {
		label := j.Label
		if label == "" {
			label = j.Node.Node
		}
		js = append(js, job{target: j.Target, node: j.Node, label: label})
	}
	return o.run(ctx, js)
}

// Run previews, confirms and restores.
func (o *Options) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	set, err := backupset.Verified(ctx, store, cmdutil.RecordPolicy(ctx, o.f, o.AllowUnsigned), o.Backup)
	if err != nil {
		return err
	}
	parts, err := o.pick(set)
	if err != nil {
		return err
	}
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	var jobs []job
	for _, p := range parts {
		dest := p.Node
		if o.ToNode != "" {
			dest = o.ToNode
		}
		n, ok := nodes.Find(dest)
		if !ok {
			return fmt.Errorf("node %s: no agent answers for it; restore onto another node with --to-node", dest)
		}
		if !n.Ready() {
			return fmt.Errorf("node %s: %w", dest, n.Err)
		}
		jobs = append(jobs, job{node: n, label: n.Node, target: &agentv1.FileRestoreTarget{
			SnapshotId: p.SnapshotID, BackupSet: o.Backup, SourceNode: p.Node,
			Paths: o.Paths, Pvc: o.PVC, TargetDir: o.Target,
		}})
	}
	return o.run(ctx, jobs)
}

// run previews, confirms and restores the jobs.
func (o *Options) run(ctx context.Context, jobs []job) error {
	previews := printers.NewRestorePreviewList(o.Backup)
	previews.Items = make([]printers.RestorePreview, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			previews.Items[i] = preview(ctx, j, o)
		}()
	}
	wg.Wait()
	var failed []string
	for _, p := range previews.Items {
		if p.Error != "" {
			failed = append(failed, p.Node+": "+p.Error)
		}
	}
	if err := o.printPreview(previews); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("preview failed, nothing was restored: %s", strings.Join(failed, "; "))
	}
	if o.DryRun {
		return nil
	}
	if !o.Yes {
		ok, err := o.confirm(previews)
		if err != nil {
			return err
		}
		if !ok {
			return cmdutil.UsageError("nothing restored: this was the preview; run again with --yes to restore")
		}
	}
	// Nodes whose files all match the backup have nothing to restore.
	// The restore carries the digest of the preview just printed: the
	// agent refuses it if the node's files changed since.
	var todo []job
	for i, j := range jobs {
		p := previews.Items[i]
		if p.Create.Files+p.Change.Files == 0 {
			fmt.Fprintf(o.Out, "%s: nothing to restore, every file matches the backup\n", j.label)
			continue
		}
		j.digest = p.Digest
		todo = append(todo, j)
	}
	if len(todo) == 0 {
		return nil
	}
	return o.restore(ctx, todo)
}

// pick chooses the set's file parts to restore.
func (o *Options) pick(set *backupset.Set) ([]backupset.FilePart, error) {
	var parts []backupset.FilePart
	for _, name := range o.Nodes {
		p, ok := set.Part(name)
		switch {
		case !ok:
			return nil, cmdutil.UsageError("--node %s: backup %s has no files from that node (it has: %s)", name, set.ID, partNodes(set))
		case p.SnapshotID == "":
			return nil, fmt.Errorf("--node %s: the backup of that node failed in %s: %s", name, set.ID, p.Error)
		}
		parts = append(parts, p)
	}
	if len(o.Nodes) == 0 {
		for _, p := range set.Files {
			if p.SnapshotID == "" {
				continue
			}
			if o.PVC != "" && !slices.Contains(p.PVCs, o.PVC) {
				continue
			}
			if len(o.Paths) > 0 && !anyUnder(o.Paths, p.Paths) {
				continue
			}
			parts = append(parts, p)
		}
	}
	switch {
	case len(parts) == 0 && o.PVC != "":
		return nil, fmt.Errorf("backup %s holds no PVC %s", set.ID, o.PVC)
	case len(parts) == 0 && len(o.Paths) > 0:
		return nil, fmt.Errorf("backup %s holds none of %s (its paths: %s)", set.ID, strings.Join(o.Paths, ", "), setPaths(set))
	case len(parts) == 0:
		return nil, fmt.Errorf("backup %s has no file snapshots to restore", set.ID)
	case o.ToNode != "" && len(parts) > 1:
		return nil, cmdutil.UsageError("--to-node needs one source node, and backup %s has files from %s: pick one with --node", set.ID, partNodes(set))
	}
	return parts, nil
}

func anyUnder(paths, roots []string) bool {
	for _, p := range paths {
		for _, r := range roots {
			if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
				return true
			}
		}
	}
	return false
}

func partNodes(set *backupset.Set) string {
	var s []string
	for _, p := range set.Files {
		s = append(s, p.Node)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func setPaths(set *backupset.Set) string {
	var s []string
	for _, p := range set.Files {
		for _, path := range p.Paths {
			s = append(s, p.Node+":"+path)
		}
	}
	return strings.Join(s, ", ")
}

func preview(ctx context.Context, j job, o *Options) printers.RestorePreview {
	fail := func(err error) printers.RestorePreview {
		return printers.RestorePreview{Node: j.label, Error: agentclient.Explain(err)}
	}
	stream, err := j.node.Conn.PreviewFileRestore(ctx, &agentv1.PreviewFileRestoreRequest{Target: j.target})
	if err != nil {
		return fail(err)
	}
	var pv *agentv1.RestorePreview
	for {
		msg, err := stream.Recv()
		if err != nil {
			if pv != nil && agentclient.IsEOF(err) {
				return printers.NewRestorePreview(j.label, pv)
			}
			return fail(err)
		}
		if p := msg.GetPreview(); p != nil {
			pv = p
		}
	}
}

func (o *Options) printPreview(l *printers.RestorePreviewList) error {
	if o.Output == printers.JSON || o.Output == printers.YAML {
		return printers.Print(o.Out, o.Output, l)
	}
	if err := printers.Print(o.Out, o.Output, l); err != nil {
		return err
	}
	fmt.Fprintln(o.Out)
	l.PrintChanges(o.Out)
	return nil
}

func (o *Options) confirm(l *printers.RestorePreviewList) (bool, error) {
	var files, replace int64
	for _, p := range l.Items {
		files += p.Create.Files + p.Change.Files
		replace += p.Change.Files
	}
	return cmdutil.Confirm(o.In, o.ErrOut, fmt.Sprintf("Restore %d file(s) on %d node(s), moving the %d replaced file(s) aside first?", files, len(l.Items), replace)), nil
}

func (o *Options) restore(ctx context.Context, jobs []job) error {
	progress := printers.NewNodeProgress(o.ErrOut, o.Output)
	results := make([]*agentv1.RestoreFilesResult, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = restoreOn(ctx, j, o, progress)
		}()
	}
	wg.Wait()
	progress.Done()
	var failed []string
	for i, j := range jobs {
		if errs[i] != nil {
			msg := agentclient.Explain(errs[i])
			if agentclient.Reason(errs[i]) == agentv1.ReasonPreviewChanged {
				msg = "refused: " + status.Convert(errs[i]).Message()
			}
			failed = append(failed, j.label+": "+msg)
			fmt.Fprintf(o.Out, "%s: restore FAILED: %s\n", j.label, msg)
			continue
		}
		r := results[i]
		fmt.Fprintf(o.Out, "%s: restored %d file(s), %s", j.label, r.FilesRestored, printers.HumanBytes(r.BytesRestored))
		if r.MovedAsideDir != "" {
			fmt.Fprintf(o.Out, "; the files it replaced are in %s", r.MovedAsideDir)
		}
		fmt.Fprintln(o.Out)
	}
	switch {
	case len(failed) == len(jobs):
		return fmt.Errorf("restore failed: %s", strings.Join(failed, "; "))
	case len(failed) > 0:
		return cmdutil.Partial("restore failed on %d of %d node(s): %s", len(failed), len(jobs), strings.Join(failed, "; "))
	}
	return nil
}

func restoreOn(ctx context.Context, j job, o *Options, progress *printers.NodeProgress) (*agentv1.RestoreFilesResult, error) {
	req := &agentv1.RestoreFilesRequest{Target: j.target, PreviewDigest: j.digest}
	if j.digest == "" {
		// An agent older than preview digests: it restores what it finds.
		req.NoPreview = true
		fmt.Fprintf(o.ErrOut, "warning: node %s's agent does not tie the restore to the preview (no digest): upgrade the agents\n", j.node.Node)
	}
	stream, err := j.node.Conn.RestoreFiles(ctx, req)
	if err != nil {
		return nil, err
	}
	var res *agentv1.RestoreFilesResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if res != nil && agentclient.IsEOF(err) {
				progress.Update(j.label, printers.ProgressEvent{Phase: "done"})
				return res, nil
			}
			progress.Update(j.label, printers.ProgressEvent{Phase: "failed"})
			return nil, err
		}
		switch ev := msg.Event.(type) {
		case *agentv1.RestoreFilesResponse_Progress:
			p := ev.Progress
			progress.Update(j.label, printers.ProgressEvent{Phase: "restore", BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, FilesDone: p.FilesDone, FilesTotal: p.FilesTotal, Percent: p.Percent})
		case *agentv1.RestoreFilesResponse_Result:
			res = ev.Result
		}
	}
}
