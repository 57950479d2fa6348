package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// CreateOptions for `kubectl dr backup create`.
type CreateOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name    string
	Etcd    bool
	Files   bool
	Buckets bool
	Nodes   []string
	Wait    bool
	Output  string
}

// NewCmdCreate returns `kubectl dr backup create`.
func NewCmdCreate(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "create [NAME] [--etcd=true] [--files=true] [--buckets=true] [--node NODE]...",
		Short: "Back up the cluster now: etcd snapshot, every node's files, every bucket source",
		Long: `Takes one etcd snapshot on the etcd leader and, in parallel, a restic snapshot
of the configured paths on every node (or the nodes given with --node) and a
pass of every application bucket source (buckets.sources, run by the etcd
leader's agent), one progress line per part. The set's record is written
last, with where each WAL source stood: Completed, or
PartiallyFailed naming each failed part (exit code 3). Ctrl-C stops restic
cleanly (its lock released) and records the set as Failed.

NAME defaults to backup-<UTC time>. Nodes without any configured path that
exists are skipped unless named with --node.`,
		Example: `  kubectl dr backup create
  kubectl dr backup create before-upgrade --node server-1 --node server-2
  kubectl dr backup create --etcd=false -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("backup create takes at most one NAME, got %q", args)
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.Etcd, "etcd", true, "take an etcd snapshot on the etcd leader")
	cmd.Flags().BoolVar(&o.Files, "files", true, "back up each node's configured paths with restic")
	cmd.Flags().BoolVar(&o.Buckets, "buckets", true, "run a pass of every bucket source on the etcd leader's agent")
	cmd.Flags().StringArrayVar(&o.Nodes, "node", nil, "back up files on this node only (repeatable)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait for the backup to finish; --wait=false runs it in the background and returns")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes NAME, or names the set by the time.
func (o *CreateOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Name = args[0]
	}
	if o.Name == "" {
		o.Name = backupset.NewID(time.Now())
	}
	return nil
}

// Validate checks the flags before any agent is asked.
func (o *CreateOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if err := backupset.ValidateID(o.Name); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	if !o.Etcd && !o.Files && !o.Buckets {
		return cmdutil.UsageError("--etcd=false, --files=false and --buckets=false leave nothing to back up")
	}
	if len(o.Nodes) > 0 && !o.Files {
		return cmdutil.UsageError("--node picks nodes for file backups; it makes no sense with --files=false")
	}
	return nil
}

// detach runs the same backup in a background process that outlives this
// one, logging to a file, and returns at once.
func (o *CreateOptions) detach() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "kubectl-dr")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(dir, o.Name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := slices.DeleteFunc(slices.Clone(os.Args[1:]), func(a string) bool {
		return a == "--wait=false" || a == "--wait=0" || a == "--wait=f" || a == "--wait=False"
	})
	if len(args) > 0 && args[len(args)-1] == "--wait" {
		args = args[:len(args)-1]
	}
	if !slices.Contains(args, o.Name) {
		args = append(args, o.Name)
	}
	args = append(args, "--wait=true")
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = detachAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the backup in the background: %w", err)
	}
	_ = cmd.Process.Release()
	fmt.Fprintf(o.Out, "backup %s started in the background (pid %d, log %s)\n", o.Name, cmd.Process.Pid, logPath)
	fmt.Fprintf(o.Out, "kubectl dr backup describe %s shows it once it has finished\n", o.Name)
	return nil
}

// Run takes the backup and writes the set, or with --wait=false starts
// that in the background.
func (o *CreateOptions) Run(ctx context.Context) error {
	if !o.Wait {
		return o.detach()
	}
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	exists, err := backupset.Exists(ctx, store, o.Name)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	if exists {
		return cmdutil.UsageError("backup %s already exists (kubectl dr backup describe %s); pick another name", o.Name, o.Name)
	}
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	if len(o.Nodes) > 0 {
		for _, name := range o.Nodes {
			if _, ok := nodes.Find(name); !ok {
				return cmdutil.UsageError("--node %s: no agent for that node (known: %s)", name, names(nodes))
			}
		}
	}
	clusterID, _ := o.f.ClusterID(ctx)
	set := &backupset.Set{ID: o.Name, ClusterID: clusterID, Started: time.Now().UTC()}
	progress := printers.NewNodeProgress(o.ErrOut, o.Output)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	if o.Etcd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := o.etcdPart(ctx, nodes, progress)
			mu.Lock()
			set.Etcd = part
			mu.Unlock()
		}()
	}
	if o.Files {
		for _, n := range nodes {
			if len(o.Nodes) > 0 && !slices.Contains(o.Nodes, n.Node) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				part, skip := o.filePart(ctx, n, progress)
				if skip {
					return
				}
				mu.Lock()
				set.Files = append(set.Files, part)
				mu.Unlock()
			}()
		}
	}
	if o.Buckets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts := o.bucketParts(ctx, nodes, progress)
			mu.Lock()
			set.Buckets = parts
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Where each WAL source stands, now that the set's parts are done.
	set.WAL = walMarks(ctx, nodes)
	progress.Done()
	slices.SortFunc(set.Files, func(a, b backupset.FilePart) int { return strings.Compare(a.Node, b.Node) })
	set.Finished = time.Now().UTC()
	interrupted := ctx.Err() != nil
	if interrupted {
		set.Error = "interrupted"
	}
	set.Decide()
	if interrupted {
		set.Phase = backupset.Failed
	}
	if set.Etcd == nil && len(set.Files) == 0 && len(set.Buckets) == 0 {
		return errors.New("nothing was backed up: no node has paths to back up (configure restic.paths in the agent config), no bucket source is configured, and --etcd=false")
	}
	// The record is written even after Ctrl-C, so the set says it failed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// kubectl dr's client certificate vouches for the set: a node may
	// not (it could point a restore at the snapshots it chose).
	sign, err := cmdutil.RecordSigner(wctx, o.f)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: backup set %s is recorded unsigned (a restore from it needs --allow-unsigned): %v\n", set.ID, err)
	}
	if err := backupset.Write(wctx, store, set, sign); err != nil {
		return err
	}
	if err := o.print(set); err != nil {
		return err
	}
	switch {
	case interrupted:
		return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted, Err: fmt.Errorf("backup %s interrupted: recorded as Failed", set.ID)}
	case set.Phase == backupset.Failed:
		return fmt.Errorf("backup %s failed: %s", set.ID, failures(set))
	case set.Phase == backupset.PartiallyFailed:
		return cmdutil.Partial("backup %s is PartiallyFailed: %s", set.ID, failures(set))
	}
	return nil
}

func (o *CreateOptions) print(set *backupset.Set) error {
	if o.Output == printers.JSON || o.Output == printers.YAML {
		return printers.Print(o.Out, o.Output, printers.NewBackupSet(set))
	}
	printers.DescribeBackupSet(o.Out, set)
	return nil
}

func failures(set *backupset.Set) string {
	var out []string
	if set.Etcd != nil && set.Etcd.Error != "" {
		out = append(out, "etcd on "+orNone(set.Etcd.Node)+": "+set.Etcd.Error)
	}
	for _, p := range set.Files {
		if p.Failed() {
			out = append(out, "files on "+p.Node+": "+p.Error)
		}
	}
	for _, b := range set.Buckets {
		if b.Error != "" {
			out = append(out, "bucket "+b.Source+" on "+orNone(b.Node)+": "+b.Error)
		}
	}
	if len(out) == 0 && set.Error != "" {
		out = append(out, set.Error)
	}
	return strings.Join(out, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "(no node)"
	}
	return s
}

func (o *CreateOptions) etcdPart(ctx context.Context, nodes agentclient.Nodes, progress *printers.NodeProgress) *backupset.EtcdPart {
	part := &backupset.EtcdPart{}
	leader, err := nodes.EtcdLeader()
	if err != nil {
		part.Error = err.Error()
		progress.Update("etcd", printers.ProgressEvent{Phase: "failed", Message: part.Error})
		return part
	}
	part.Node = leader.Node
	stream, err := leader.Conn.SaveEtcdSnapshot(ctx, &agentv1.SaveEtcdSnapshotRequest{Name: o.Name, BackupSet: o.Name})
	if err != nil {
		part.Error = agentclient.Explain(err)
		return part
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if part.Snapshot != "" && agentclient.IsEOF(err) {
				break
			}
			part.Error = agentclient.Explain(err)
			progress.Update("etcd", printers.ProgressEvent{Phase: "failed", Message: part.Error})
			return part
		}
		switch ev := msg.Event.(type) {
		case *agentv1.SaveEtcdSnapshotResponse_Progress:
			p := ev.Progress
			progress.Update("etcd", printers.ProgressEvent{Phase: p.Phase, Message: "on " + leader.Node, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Percent: p.Percent})
		case *agentv1.SaveEtcdSnapshotResponse_Snapshot:
			s := ev.Snapshot
			part.Snapshot, part.Revision, part.Size = s.Name, s.Revision, s.SizeBytes
			if !s.Uploaded {
				part.Error = "saved on " + leader.Node + " but not uploaded: " + s.UploadError
			}
		}
	}
	msg := fmt.Sprintf("%s on %s, %s", part.Snapshot, leader.Node, printers.HumanBytes(part.Size))
	if part.Error != "" {
		progress.Update("etcd", printers.ProgressEvent{Phase: "failed", Message: part.Error})
	} else {
		progress.Update("etcd", printers.ProgressEvent{Phase: "done", Message: msg})
	}
	return part
}

// filePart backs up one node's files; skip is true for a node that has no
// paths and was not named.
func (o *CreateOptions) filePart(ctx context.Context, n *agentclient.Node, progress *printers.NodeProgress) (part backupset.FilePart, skip bool) {
	part.Node = n.Node
	fail := func(msg string) (backupset.FilePart, bool) {
		part.Error = msg
		progress.Update(n.Node, printers.ProgressEvent{Phase: "failed", Message: msg})
		return part, false
	}
	if !n.Ready() {
		return fail(n.Err.Error())
	}
	stream, err := n.Conn.BackupFiles(ctx, &agentv1.BackupFilesRequest{BackupSet: o.Name})
	if err != nil {
		return fail(agentclient.Explain(err))
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if part.SnapshotID != "" && agentclient.IsEOF(err) {
				break
			}
			if status.Code(err) == codes.FailedPrecondition && len(o.Nodes) == 0 && isNothingToDo(err) {
				progress.Update(n.Node, printers.ProgressEvent{Phase: "skipped", Message: status.Convert(err).Message()})
				return part, true
			}
			if ctx.Err() != nil {
				return fail("interrupted")
			}
			return fail(agentclient.Explain(err))
		}
		switch ev := msg.Event.(type) {
		case *agentv1.BackupFilesResponse_Progress:
			p := ev.Progress
			progress.Update(n.Node, printers.ProgressEvent{Phase: "files", BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, FilesDone: p.FilesDone, FilesTotal: p.FilesTotal, Percent: p.Percent, ETASeconds: p.EtaSeconds})
		case *agentv1.BackupFilesResponse_Snapshot:
			s := ev.Snapshot
			part.SnapshotID, part.Paths, part.PVCs = s.Id, s.Paths, s.Pvcs
			part.Files, part.Bytes, part.BytesAdded, part.Warnings = s.TotalFiles, s.TotalBytes, s.BytesAdded, s.Warnings
			slices.Sort(part.PVCs)
		}
	}
	progress.Update(n.Node, printers.ProgressEvent{Phase: "done", Message: fmt.Sprintf("snapshot %s: %d files, %s, %s new", part.SnapshotID[:8], part.Files, printers.HumanBytes(part.Bytes), printers.HumanBytes(part.BytesAdded))})
	return part, false
}

// isNothingToDo tells "this node has no paths" or "file backups are off
// here" from other refusals.
func isNothingToDo(err error) bool {
	r := agentclient.Reason(err)
	return r == agentv1.ReasonNoPaths || r == agentv1.ReasonFilesOff
}

func names(nodes agentclient.Nodes) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Node)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// walMarks asks every node for its WAL sources' positions. A node that
// cannot answer gets a mark with its error; it does not fail the set.
func walMarks(ctx context.Context, nodes agentclient.Nodes) []backupset.WALMark {
	var marks []backupset.WALMark
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		resp, err := n.Conn.MarkWAL(ctx, &agentv1.MarkWALRequest{})
		if status.Code(err) == codes.Unimplemented {
			continue
		}
		if err != nil {
			marks = append(marks, backupset.WALMark{Node: n.Node, Time: time.Now().UTC(), Error: agentclient.Explain(err)})
			continue
		}
		for _, m := range resp.Marks {
			marks = append(marks, backupset.WALMark{Node: n.Node, Source: m.Source, Timeline: m.Timeline, LSN: m.Lsn, Segment: m.Segment, Time: m.Time.AsTime()})
		}
	}
	return marks
}

// bucketParts runs a pass of every bucket source the etcd leader's agent
// runs, in parallel. No sources, or an agent without bucket passes, gives
// no parts; an unreachable leader gives one failed part per source it
// cannot name, so the set says buckets were not backed up.
func (o *CreateOptions) bucketParts(ctx context.Context, nodes agentclient.Nodes, progress *printers.NodeProgress) []backupset.BucketPart {
	leader, err := nodes.EtcdLeader()
	if err != nil {
		// Without a leader there is no etcd part either, which says why;
		// the sources cannot even be listed.
		return nil
	}
	st, err := leader.Conn.Buckets().BucketStatus(ctx, &agentv1.BucketStatusRequest{})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	if err != nil {
		part := backupset.BucketPart{Node: leader.Node, Error: "list the bucket sources: " + agentclient.Explain(err)}
		progress.Update("buckets", printers.ProgressEvent{Phase: "failed", Message: part.Error})
		return []backupset.BucketPart{part}
	}
	parts := make([]backupset.BucketPart, len(st.Sources))
	var wg sync.WaitGroup
	for i, src := range st.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = bucketPart(ctx, leader, src.Name, progress)
		}()
	}
	wg.Wait()
	return parts
}

func bucketPart(ctx context.Context, leader *agentclient.Node, source string, progress *printers.NodeProgress) backupset.BucketPart {
	line := "bucket " + source
	part := backupset.BucketPart{Node: leader.Node, Source: source}
	fail := func(msg string) backupset.BucketPart {
		part.Error = msg
		progress.Update(line, printers.ProgressEvent{Phase: "failed", Message: msg})
		return part
	}
	progress.Update(line, printers.ProgressEvent{Phase: "pass", Message: "on " + leader.Node})
	stream, err := leader.Conn.Buckets().BackupBucket(ctx, &agentv1.BackupBucketRequest{Source: source})
	if err != nil {
		return fail(agentclient.Explain(err))
	}
	var res *agentv1.BucketPassResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if res != nil && agentclient.IsEOF(err) {
				break
			}
			if ctx.Err() != nil {
				return fail("interrupted")
			}
			return fail(agentclient.Explain(err))
		}
		if msg.Result != nil {
			res = msg.Result
		}
	}
	part.Pass = res.Pass.AsTime().UTC()
	part.Listed, part.Copied, part.Deleted, part.BytesUploaded = res.Listed, res.Copied, res.Deleted, res.BytesUploaded
	progress.Update(line, printers.ProgressEvent{Phase: "done", Message: fmt.Sprintf("pass of %s on %s: %d objects, %d copied (%s stored), %d deleted", part.Pass.Format(time.RFC3339), leader.Node, part.Listed, part.Copied, printers.HumanBytes(part.BytesUploaded), part.Deleted)})
	return part
}
