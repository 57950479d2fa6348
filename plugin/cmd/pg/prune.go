package pg

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// PruneOptions for `kubectl dr pg prune`.
type PruneOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	Output string
	DryRun bool
}

// NewCmdPrune returns `kubectl dr pg prune`.
func NewCmdPrune(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PruneOptions{IOStreams: streams, f: f}
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
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.WALSourceNames(f)),
	}
	printers.OutputFlag(cmd, &o.Output)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "only print what would be removed")
	return cmd
}

// Complete takes SOURCE.
func (o *PruneOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	return nil
}

// Validate checks -o.
func (o *PruneOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run has the source's node apply its retention and prints what it kept
// and removed.
func (o *PruneOptions) Run(ctx context.Context) error {
	nodes, n, err := connectSource(ctx, o.f, o.Source)
	if err != nil {
		return err
	}
	defer nodes.Close()
	// The node removes records, WAL and restic snapshots: it gets the
	// install's delete-capable credentials for this request (its own may
	// be put/get-only).
	creds, err := cmdutil.DeleteCredentials(ctx, o.f)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: %v; the node prunes with its own credentials\n", err)
	}
	resp, err := n.Conn.PruneBaseBackups(ctx, &agentv1.PruneBaseBackupsRequest{Source: o.Source, DryRun: o.DryRun, StoreCredentials: creds})
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("node %s: its agent cannot prune base backups (upgrade it)", n.Node)
	}
	if err != nil {
		return fmt.Errorf("prune on %s: %s", n.Node, agentclient.Explain(err))
	}
	view := printers.NewBaseBackupPrune(o.Source, n.Node)
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
		fmt.Fprintf(o.ErrOut, "%s has no base backups: nothing to prune (kubectl dr pg basebackup %s takes one)\n", o.Source, o.Source)
		return nil
	}
	if err := printers.Print(o.Out, o.Output, view); err != nil {
		return err
	}
	if o.Output == printers.Table || o.Output == printers.Wide {
		fmt.Fprintln(o.Out, view.Summary())
	}
	if resp.Deferred != "" {
		fmt.Fprintf(o.ErrOut, "The prune stopped early, nothing is lost: %s\n", resp.Deferred)
	}
	if o.DryRun {
		fmt.Fprintln(o.ErrOut, "Nothing was removed: run without --dry-run to remove.")
	}
	return nil
}
