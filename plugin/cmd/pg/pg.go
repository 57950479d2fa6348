// Package pg implements `kubectl dr pg basebackup|ls|prune|restore`: base
// backups of a WAL source's database, their listing and retention, and
// point-in-time restores from them.
package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// NewCmdPG returns the pg command group.
func NewCmdPG(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "PostgreSQL base backups and point-in-time restore",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCmdBaseBackup(f, streams), newCmdLs(f, streams), newCmdPrune(f, streams), newCmdRestore(f, streams))
	return cmd
}

// connectSource reaches the agents and the one that ships source; the
// caller closes nodes.
func connectSource(ctx context.Context, f *cmdutil.Factory, source string) (agentclient.Nodes, *agentclient.Node, error) {
	nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
	if err != nil {
		return nil, nil, err
	}
	n, err := sourceNode(ctx, nodes, source)
	if err != nil {
		nodes.Close()
		return nil, nil, err
	}
	return nodes, n, nil
}

// sourceNode finds the node that ships source.
func sourceNode(ctx context.Context, nodes agentclient.Nodes, source string) (*agentclient.Node, error) {
	var tried []string
	for _, n := range nodes {
		if !n.Ready() {
			tried = append(tried, n.Node+" (not reachable)")
			continue
		}
		resp, err := n.Conn.WALStatus(ctx, &agentv1.WALStatusRequest{Source: source})
		if err == nil && len(resp.Sources) > 0 {
			return n, nil
		}
		tried = append(tried, n.Node)
	}
	return nil, fmt.Errorf("no node ships a WAL source %q (asked %s); kubectl dr wal status lists them", source, strings.Join(tried, ", "))
}

func newCmdBaseBackup(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
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
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			nodes, n, err := connectSource(ctx, f, args[0])
			if err != nil {
				return err
			}
			defer nodes.Close()
			stream, err := n.Conn.BaseBackup(ctx, &agentv1.BaseBackupRequest{Source: args[0]})
			if err != nil {
				return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
			}
			progress := printers.NewNodeProgress(streams.ErrOut, output)
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
			fmt.Fprintf(streams.Out, "base backup %s of %s on %s: WAL %s .. %s (timeline %d), %s, %s\n",
				res.Id, res.Source, n.Node, res.StartLsn, res.StopLsn, res.Timeline, printers.HumanBytes(res.SizeBytes),
				res.StopTime.AsTime().Sub(res.StartTime.AsTime()).Round(100*time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json: progress as JSON events on stderr")
	return cmd
}

func newCmdPrune(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		output string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "prune SOURCE [--dry-run]",
		Short: "Apply the source's base backup retention now",
		Long: `Applies the source's baseBackupRetention (agent config; default the last 2
and a week of dailies) on the node that ships SOURCE, as it is applied after
each scheduled base backup: the base backups beyond it are removed (their
record first, so none is ever listed without its data, then their restic
snapshots), and then the WAL that only they could use: every WAL file before
the oldest kept base backup's first one. History files are always kept.
Point-in-time restore can go back to the oldest kept base backup's end.`,
		Example: `  kubectl dr pg prune pg-main --dry-run
  kubectl dr pg prune pg-main`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("pg prune takes one SOURCE (kubectl dr wal status lists them)")
			}
			return printers.ValidateOutput(output)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			nodes, n, err := connectSource(ctx, f, args[0])
			if err != nil {
				return err
			}
			defer nodes.Close()
			resp, err := n.Conn.PruneBaseBackups(ctx, &agentv1.PruneBaseBackupsRequest{Source: args[0], DryRun: dryRun})
			if status.Code(err) == codes.Unimplemented {
				return fmt.Errorf("node %s: its agent cannot prune base backups (upgrade it)", n.Node)
			}
			if err != nil {
				return fmt.Errorf("prune on %s: %s", n.Node, agentclient.Explain(err))
			}
			view := printers.NewBaseBackupPrune(args[0], n.Node)
			view.Retention, view.DryRun, view.FirstWAL = resp.Retention, resp.DryRun, resp.FirstWal
			view.WALFilesRemoved, view.WALBytesRemoved, view.SnapshotsForgotten = resp.WalFilesRemoved, resp.WalBytesRemoved, resp.SnapshotsForgotten
			add := func(bs []*agentv1.BaseBackupResult, action string) {
				for _, b := range bs {
					view.Items = append(view.Items, baseBackupView(b, action))
				}
			}
			add(resp.Kept, "keep")
			add(resp.Removed, "remove")
			sort.Slice(view.Items, func(i, j int) bool { return view.Items[i].StopTime.Before(view.Items[j].StopTime) })
			if len(view.Items) == 0 {
				fmt.Fprintf(streams.ErrOut, "%s has no base backups: nothing to prune (kubectl dr pg basebackup %s takes one)\n", args[0], args[0])
				return nil
			}
			if err := printers.Print(streams.Out, output, view); err != nil {
				return err
			}
			if output == printers.Table || output == printers.Wide {
				fmt.Fprintln(streams.Out, view.Summary())
			}
			if dryRun {
				fmt.Fprintln(streams.ErrOut, "Nothing was removed: run without --dry-run to remove.")
			}
			return nil
		},
	}
	printers.OutputFlag(cmd, &output)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only print what would be removed")
	return cmd
}

func newCmdRestore(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		to, targetDir, node string
		latest, verify      bool
	)
	cmd := &cobra.Command{
		Use:   "restore SOURCE --to TIME|--latest --target-dir DIR [--node N] [--verify]",
		Short: "Restore a database to a point in time, into a new directory",
		Long: `Lays down, in DIR on the node (by default the one that ships SOURCE), the newest
base backup that finished before TIME, its backup_label, and the recovery
settings: restore_command fetching WAL from the store through dr-agent wal
fetch (checksums checked), recovery_target_time, recovery.signal, and
archive_mode off (a restored copy must not archive into the source's spool).
DIR must be new or empty: nothing is overwritten. It prints how to start it;
with --verify it starts a scratch instance on DIR (no TCP), waits for
recovery to reach TIME and promote, and reports the last replayed
transaction's time and each table's row count.`,
		Example: `  kubectl dr pg restore pg-main --to 2026-11-21T10:15:00Z --target-dir /var/lib/restore/pg --verify
  kubectl dr pg restore pg-main --latest --target-dir /var/lib/restore/pg --node server-2`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("pg restore takes one SOURCE")
			}
			if (to == "") == !latest {
				return cmdutil.UsageError("give exactly one of --to TIME and --latest")
			}
			if targetDir == "" || !strings.HasPrefix(targetDir, "/") {
				return cmdutil.UsageError("--target-dir: an absolute directory on the node is required")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &agentv1.RestorePostgresRequest{Source: args[0], TargetDir: targetDir, Verify: verify}
			if latest {
				req.Target = &agentv1.RestorePostgresRequest_Latest{Latest: true}
			} else {
				t, err := time.Parse(time.RFC3339Nano, to)
				if err != nil {
					return cmdutil.UsageError("--to %q: want an RFC 3339 time such as 2026-11-21T10:15:00Z: %v", to, err)
				}
				req.Target = &agentv1.RestorePostgresRequest_Time{Time: timestamppb.New(t)}
			}
			ctx := cmd.Context()
			nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
			if err != nil {
				return err
			}
			defer nodes.Close()
			var n *agentclient.Node
			if node != "" {
				var ok bool
				if n, ok = nodes.Find(node); !ok || !n.Ready() {
					return fmt.Errorf("--node %s: no agent answers for it", node)
				}
			} else if n, err = sourceNode(ctx, nodes, args[0]); err != nil {
				return err
			}
			stream, err := n.Conn.RestorePostgres(ctx, req)
			if err != nil {
				return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
			}
			progress := printers.NewNodeProgress(streams.ErrOut, "")
			var res *agentv1.RestorePostgresResult
			for {
				msg, err := stream.Recv()
				if err != nil {
					progress.Done()
					if res != nil && agentclient.IsEOF(err) {
						break
					}
					if status.Code(err) == codes.Unimplemented {
						return fmt.Errorf("node %s: its agent cannot restore PostgreSQL (upgrade it)", n.Node)
					}
					return fmt.Errorf("restore on %s: %s", n.Node, agentclient.Explain(err))
				}
				if p := msg.GetProgress(); p != nil {
					progress.Update(n.Node, printers.ProgressEvent{Phase: p.Phase, Message: p.Message, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Percent: p.Percent})
				}
				if r := msg.GetResult(); r != nil {
					res = r
				}
			}
			out := streams.Out
			fmt.Fprintf(out, "restored %s on %s into %s from base backup %s\n", args[0], n.Node, res.TargetDir, res.BaseBackup)
			if !verify {
				fmt.Fprintf(out, "start it with: %s\n", res.StartCommand)
				return nil
			}
			if res.RecoveredTo != nil {
				fmt.Fprintf(out, "recovered to %s (last replayed transaction)\n", res.RecoveredTo.AsTime().UTC().Format(time.RFC3339Nano))
			}
			tables := make([]string, 0, len(res.RowCounts))
			for t := range res.RowCounts {
				tables = append(tables, t)
			}
			sort.Strings(tables)
			for _, t := range tables {
				fmt.Fprintf(out, "%s\t%d rows\n", t, res.RowCounts[t])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "recovery target time (RFC 3339)")
	cmd.Flags().BoolVar(&latest, "latest", false, "replay all archived WAL")
	cmd.Flags().StringVar(&targetDir, "target-dir", "", "new directory on the node for the restored data directory")
	cmd.Flags().StringVar(&node, "node", "", "restore on this node (default: the node that ships SOURCE)")
	cmd.Flags().BoolVar(&verify, "verify", false, "start a scratch instance on it and report what it recovered")
	return cmd
}
