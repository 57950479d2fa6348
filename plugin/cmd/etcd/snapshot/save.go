package snapshot

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// SaveOptions for `kubectl dr etcd snapshot save`.
type SaveOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name   string
	Node   string
	Output string
}

// NewCmdSave returns `kubectl dr etcd snapshot save`.
func NewCmdSave(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SaveOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "save [--name NAME] [--node NODE]",
		Short: "Take an etcd snapshot now, keep it on the node and upload it",
		Long: `Takes a snapshot of etcd on one server (by default the etcd leader's), checks
etcd's sha256 trailer as it streams, keeps a k3s-named copy in
<data-dir>/server/db/snapshots/ and uploads it compressed (and encrypted, with
a snapshot key) to the store in the same pass. The snapshot is listed as good
only once its upload is verified. If the store is down, the local copy is
kept and uploaded by the next save.`,
		Example: `  kubectl dr etcd snapshot save
  kubectl dr etcd snapshot save --name before-upgrade --node server-2 -o json`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.Name, "name", "on-demand", "snapshot name; the file is <name>-<node>-<unix time>")
	cmd.Flags().StringVar(&o.Node, "node", "", "server to snapshot on (default: the etcd leader's)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete has nothing to resolve.
func (o *SaveOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the flags before any agent is asked.
func (o *SaveOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if err := dbsnap.ValidateName(o.Name); err != nil {
		return cmdutil.UsageError("--name: %w", err)
	}
	return nil
}

// Run picks the node, streams the agent's progress and prints the result.
func (o *SaveOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	node, err := nodes.Server(o.Node)
	if err != nil {
		return err
	}
	stream, err := node.Conn.SaveEtcdSnapshot(ctx, &agentv1.SaveEtcdSnapshotRequest{Name: o.Name})
	if err != nil {
		return fmt.Errorf("node %s: %s", node.Node, agentclient.Explain(err))
	}
	progress := printers.NewProgress(o.ErrOut, o.Output)
	var snap *dbsnap.Snapshot
	for {
		msg, err := stream.Recv()
		if err != nil {
			progress.Done()
			if snap != nil && agentclient.IsEOF(err) {
				break
			}
			return fmt.Errorf("snapshot on %s: %s", node.Node, agentclient.Explain(err))
		}
		switch ev := msg.Event.(type) {
		case *agentv1.SaveEtcdSnapshotResponse_Progress:
			p := ev.Progress
			progress.Update(printers.ProgressEvent{Node: node.Node, Phase: p.Phase, Message: p.Message, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Percent: p.Percent})
		case *agentv1.SaveEtcdSnapshotResponse_Snapshot:
			snap = agentclient.SnapshotFromProto(ev.Snapshot)
		}
	}
	if err := printers.Print(o.Out, o.Output, printers.NewEtcdSnapshot(snap)); err != nil {
		return err
	}
	if !snap.Uploaded {
		return fmt.Errorf("snapshot %s is saved on %s at %s but NOT uploaded: %s; it will be uploaded by the next save once the store answers", snap.Name, snap.Node, snap.LocalPath, snap.UploadError)
	}
	if !snap.Encrypted() {
		fmt.Fprintf(o.ErrOut, "warning: snapshot %s was uploaded unencrypted (it holds every Secret of the cluster): configure a snapshot key\n", snap.Name)
	}
	return nil
}
