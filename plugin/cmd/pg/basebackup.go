package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// BaseBackupOptions for `kubectl dr pg basebackup`.
type BaseBackupOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	Output string
}

// NewCmdBaseBackup returns `kubectl dr pg basebackup`.
func NewCmdBaseBackup(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BaseBackupOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "basebackup SOURCE",
		Short: "Take a base backup of a WAL source's database",
		Long: `Takes a base backup that point-in-time recovery can start from: on the node
that ships SOURCE, pg_backup_start, a restic snapshot of the data directory
(incremental and deduplicated like every file backup), pg_backup_stop
waiting for the backup's WAL to be archived, and a wait until that WAL is in
the store. Only then is the base backup recorded with its start and stop WAL
positions. Needs connection and pgdata for the source in the agent config.`,
		Example: `  kubectl dr pg basebackup pg-main`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("pg basebackup takes one SOURCE (kubectl dr wal status lists them)")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.WALSourceNames(f)),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "json: progress as JSON events on stderr")
	return cmd
}

// Complete takes SOURCE.
func (o *BaseBackupOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	return nil
}

// Validate has nothing to check beyond the arguments.
func (o *BaseBackupOptions) Validate() error { return nil }

// Run takes the base backup on the node that ships the source.
func (o *BaseBackupOptions) Run(ctx context.Context) error {
	nodes, n, err := connectSource(ctx, o.f, o.Source)
	if err != nil {
		return err
	}
	defer nodes.Close()
	stream, err := n.Conn.BaseBackup(ctx, &agentv1.BaseBackupRequest{Source: o.Source})
	if err != nil {
		return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
	}
	progress := printers.NewNodeProgress(o.ErrOut, o.Output)
	var res *agentv1.BaseBackupResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			progress.Done()
			if res != nil && agentclient.IsEOF(err) {
				break
			}
			return fmt.Errorf("base backup on %s: %s", n.Node, agentclient.Explain(err))
		}
		if p := msg.GetProgress(); p != nil {
			progress.Update(n.Node, printers.ProgressEvent{Phase: p.Phase, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, FilesDone: p.FilesDone, FilesTotal: p.FilesTotal, Percent: p.Percent})
		}
		if r := msg.GetResult(); r != nil {
			res = r
		}
	}
	fmt.Fprintf(o.Out, "base backup %s of %s on %s: WAL %s .. %s (timeline %d), %s, %s\n",
		res.Id, res.Source, n.Node, res.StartLsn, res.StopLsn, res.Timeline, printers.HumanBytes(res.SizeBytes),
		res.StopTime.AsTime().Sub(res.StartTime.AsTime()).Round(100*time.Millisecond))
	return nil
}
