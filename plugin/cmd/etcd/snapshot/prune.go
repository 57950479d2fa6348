package snapshot

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// PruneOptions for `kubectl dr etcd snapshot prune`.
type PruneOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	DryRun bool
}

// NewCmdPrune returns `kubectl dr etcd snapshot prune`.
func NewCmdPrune(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PruneOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "prune [--dry-run]",
		Short: "Apply the configured retention to scheduled snapshots now",
		Long: `Applies the agents' retention (keep-last plus hourly, daily, weekly and
monthly counts) to scheduled snapshots, in the store and to the local copies
on every server. On-demand snapshots and those of backup sets are kept until
removed with rm.`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "only print what would be removed")
	return cmd
}

// Complete has nothing to resolve.
func (o *PruneOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check.
func (o *PruneOptions) Validate() error { return nil }

// Run prunes on the leader, then on every other server.
func (o *PruneOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	leader, err := nodes.EtcdLeader()
	if err != nil {
		return err
	}
	// The leader prunes the store and its copies, then every other server
	// its own local copies.
	order := []*agentclient.Node{leader}
	for _, n := range nodes {
		if n != leader && n.IsEtcdMember() {
			order = append(order, n)
		}
	}
	var removed []string
	for _, n := range order {
		resp, err := n.Conn.PruneEtcdSnapshots(ctx, &agentv1.PruneEtcdSnapshotsRequest{DryRun: o.DryRun})
		if err != nil {
			return fmt.Errorf("prune on %s: %s", n.Node, agentclient.Explain(err))
		}
		for _, r := range resp.Removed {
			if !slices.Contains(removed, r) {
				removed = append(removed, r)
			}
		}
	}
	verb := "removed"
	if o.DryRun {
		verb = "would remove"
	}
	for _, r := range removed {
		fmt.Fprintf(o.Out, "%s %s\n", verb, r)
	}
	if len(removed) == 0 {
		fmt.Fprintln(o.ErrOut, "nothing to prune")
	}
	return nil
}
