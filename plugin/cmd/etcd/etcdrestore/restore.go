package etcdrestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd/snapshot"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Options for `kubectl dr etcd restore`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Snapshot  string
	BackupSet string
	Latest    bool
	DryRun    bool
	Yes       bool
	Status    bool
	Node      string
	Output    string
	// SkipPreflight names failed preflight checks to restore anyway.
	SkipPreflight []string
	// AllowUnsigned accepts a snapshot whose record has no signature.
	AllowUnsigned bool
}

// NewCmdRestore returns the restore command.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT|--backup ID|--latest [--dry-run] [--yes] | --status",
		Short: "Restore the cluster's etcd from a snapshot, after a preview",
		Long: `Restore first previews: the snapshot is downloaded to a server, its checksum
verified, and its keys compared with the live cluster's, per resource type
and namespace: what would disappear (live now, not in the snapshot),
reappear (in the snapshot, gone now) and change. --dry-run stops there.

Then every server's agent gets its part of the plan, and the snapshot is
fetched and verified where it is used, before anything stops: an agent that
does not answer, a server busy with another restore, or a snapshot that does
not verify stops everything before it starts. Each agent then carries its
part out on its own, recording each step in a state file on its node.

k3s (restore.flavor: k3s, the default), in k3s's documented order: k3s is
stopped on every server; the server the preview ran on (--node, default the
etcd leader's) waits until the others' etcd is down, runs
k3s server --cluster-reset --cluster-reset-restore-path=<verified file>
(k3s moves server/db/etcd to etcd-old-<time>) and starts k3s; every other
server waits until that server's etcd is healthy, moves server/db/etcd
aside (never deleted; server/db/snapshots stays) and starts k3s, which
rejoins.

kubeadm-style etcd (restore.flavor: etcd): every member is stopped, its data
dir restored from the snapshot into a new dir (the old one moved aside), the
revision moved past the snapshot's so watchers relist, and started.

Before anything stops, every server checks the snapshot against itself
(the preflight): the server token matches the snapshot's k3s bootstrap
data (a wrong one is k3s's "bootstrap data already found and encrypted with
different token"), the node's k3s is not a minor version older than the
snapshot's, an encryption config that decrypts the snapshot's Secrets is
there when they are encrypted at rest, and the data dir has room for twice
the snapshot. A failed check refuses the restore with its row and what to
do; --skip-preflight CHECK restores anyway.

The command prints each step as it happens, waits for the API server, and
prints the timeline and the total (the measured RTO). If the command is
interrupted the agents finish; --status shows where they are.`,
		Example: `  kubectl dr etcd restore --latest --dry-run
  kubectl dr etcd restore on-demand-server-1-1795285773 --yes
  kubectl dr etcd restore --status`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("%s takes one snapshot name, got %q", cmd.CommandPath(), args)
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.BackupSet, "backup", "", "the etcd snapshot of this backup set")
	cmd.Flags().BoolVar(&o.Latest, "latest", false, "the newest snapshot in the store")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "preview only")
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "restore after the preview without asking")
	cmd.Flags().BoolVar(&o.Status, "status", false, "show each server's latest restore plan and its steps")
	cmd.Flags().BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage)
	cmd.Flags().StringArrayVar(&o.SkipPreflight, "skip-preflight", nil, "restore although this preflight check failed ("+strings.Join(PreflightChecks, ", ")+"; repeatable)")
	cmd.Flags().StringVar(&o.Node, "node", "", "the server to preview on and, for k3s, to reset the cluster on (default: the etcd leader's)")
	cmd.ValidArgsFunction = cmdutil.Complete(1, snapshot.Names(f))
	cmd.RegisterFlagCompletionFunc("backup", cmdutil.CompleteFlag(cmdutil.BackupSetNames(f)))
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes the snapshot argument.
func (o *Options) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Snapshot = args[0]
	}
	return nil
}

// Validate wants exactly one way of naming the snapshot.
func (o *Options) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	for _, c := range o.SkipPreflight {
		if !slices.Contains(PreflightChecks, c) {
			return cmdutil.UsageError("--skip-preflight %q: want one of %s", c, strings.Join(PreflightChecks, ", "))
		}
	}
	if o.Status {
		if o.Snapshot != "" || o.BackupSet != "" || o.Latest || o.DryRun || o.Yes {
			return cmdutil.UsageError("--status goes alone")
		}
		return nil
	}
	n := 0
	for _, set := range []bool{o.Snapshot != "", o.BackupSet != "", o.Latest} {
		if set {
			n++
		}
	}
	if n != 1 {
		return cmdutil.UsageError("name the snapshot: SNAPSHOT, --backup ID or --latest (exactly one)")
	}
	if o.Snapshot != "" {
		if err := dbsnap.ValidateName(o.Snapshot); err != nil {
			return cmdutil.UsageError("%w", err)
		}
	}
	return nil
}

// Run previews on one server.
func (o *Options) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	if o.Status {
		return o.status(ctx, nodes)
	}
	if !o.DryRun {
		// A restore needs every member's agent, and none of them busy
		// with another restore: say so before the preview.
		if err := inProgress(ctx, nodes); err != nil {
			return err
		}
		if _, _, err := members(nodes); err != nil {
			return err
		}
	}
	node, err := nodes.Server(o.Node)
	if err != nil {
		return err
	}
	ref := &agentv1.SnapshotRef{Name: o.Snapshot, BackupSet: o.BackupSet, Latest: o.Latest, AllowUnsigned: o.AllowUnsigned}
	stream, err := node.Conn.PreviewEtcdRestore(ctx, &agentv1.PreviewEtcdRestoreRequest{Snapshot: ref})
	if err != nil {
		return fmt.Errorf("node %s: %s", node.Node, agentclient.Explain(err))
	}
	progress := printers.NewProgress(o.ErrOut, o.Output)
	var preview *agentv1.EtcdRestorePreview
	for {
		msg, err := stream.Recv()
		if err != nil {
			progress.Done()
			if preview != nil && agentclient.IsEOF(err) {
				break
			}
			return fmt.Errorf("preview on %s: %s", node.Node, agentclient.Explain(err))
		}
		switch ev := msg.Event.(type) {
		case *agentv1.PreviewEtcdRestoreResponse_Progress:
			progress.Update(printers.ProgressEvent{Node: node.Node, Phase: ev.Progress.Phase, Message: ev.Progress.Message})
		case *agentv1.PreviewEtcdRestoreResponse_Preview:
			preview = ev.Preview
		}
	}
	var items []printers.Impact
	for _, r := range preview.Impact {
		items = append(items, printers.Impact{
			GroupResource: r.GroupResource, Namespace: r.Namespace,
			Disappear: r.Disappear, Reappear: r.Reappear, Change: r.Change, Unchanged: r.Unchanged,
			DisappearNames: r.DisappearNames, ReappearNames: r.ReappearNames, ChangeNames: r.ChangeNames,
		})
	}
	view := printers.NewEtcdRestorePreview(node.Node, agentclient.SnapshotFromProto(preview.Snapshot), preview.LiveRevision, items)
	if view.Digests, err = o.previewDigests(ctx, nodes, node.Node, preview); err != nil {
		return err
	}
	table := o.Output == printers.Table || o.Output == printers.Wide || o.Output == ""
	if table {
		view.PrintHeader(o.Out)
	}
	if err := printers.Print(o.Out, o.Output, view); err != nil {
		return err
	}
	if table {
		fmt.Fprintln(o.Out)
		view.PrintNames(o.Out)
	}
	var servers []*agentclient.Node
	for _, n := range nodes {
		if n.Ready() && (n.IsEtcdMember() || n.IsSQLite()) {
			servers = append(servers, n)
		}
	}
	pfOut := o.ErrOut
	if table {
		pfOut = o.Out
		fmt.Fprintln(o.Out)
	}
	if err := Preflight(ctx, pfOut, o.ErrOut, servers, &agentv1.SnapshotRef{Name: view.Snapshot.Name, AllowUnsigned: o.AllowUnsigned}, false, o.SkipPreflight); err != nil {
		return err
	}
	if o.DryRun {
		if table {
			fmt.Fprintln(o.Out, "Nothing was changed (--dry-run).")
		}
		return nil
	}
	if !o.Yes && !cmdutil.Confirm(o.In, o.ErrOut, fmt.Sprintf("Stop every etcd member and restore the cluster from %s?", view.Snapshot.Name)) {
		return cmdutil.UsageError("nothing was changed: this was the preview; run again with --yes to restore")
	}
	return o.restore(ctx, nodes, view.Snapshot, node.Node, view.Digests, preview.LiveRevision)
}

// previewDigests are the digests of every server's part of a restore from
// the previewed snapshot: the preview node's from its preview, the other
// servers' asked of them (their part: the snapshot and the data dir they
// move aside). Each part of the plan carries its node's digest, and the
// node refuses it if that changed. A dry run leaves out servers that do
// not answer; a restore stops before anything if one does not. Agents
// older than preview digests give none ("").
func (o *Options) previewDigests(ctx context.Context, nodes agentclient.Nodes, previewNode string, pv *agentv1.EtcdRestorePreview) (map[string]string, error) {
	out := map[string]string{previewNode: pv.GetDigest()}
	ref := &agentv1.SnapshotRef{Name: pv.GetSnapshot().GetName(), AllowUnsigned: o.AllowUnsigned}
	for _, n := range nodes {
		if n.Node == previewNode || !n.Ready() || !n.IsEtcdMember() {
			continue
		}
		d, err := digestOf(ctx, n, ref, pv.GetSnapshot().GetSha256())
		if err != nil {
			if o.DryRun {
				fmt.Fprintf(o.ErrOut, "warning: node %s: %v\n", n.Node, err)
				continue
			}
			return nil, fmt.Errorf("nothing was stopped: node %s: %w", n.Node, err)
		}
		out[n.Node] = d
	}
	return out, nil
}

// digestOf asks n for the digest of its part of a restore from ref.
func digestOf(ctx context.Context, n *agentclient.Node, ref *agentv1.SnapshotRef, sha string) (string, error) {
	stream, err := n.Conn.PreviewEtcdRestore(ctx, &agentv1.PreviewEtcdRestoreRequest{Snapshot: ref, DigestOnly: true})
	if err != nil {
		return "", errors.New(agentclient.Explain(err))
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return "", fmt.Errorf("the digest of its part: %s", agentclient.Explain(err))
		}
		if pv := msg.GetPreview(); pv != nil {
			if got := pv.GetSnapshot().GetSha256(); got != sha {
				return "", fmt.Errorf("snapshot %s has sha256 %s in its store, the preview's has %s", ref.Name, got, sha)
			}
			return pv.GetDigest(), nil
		}
	}
}
