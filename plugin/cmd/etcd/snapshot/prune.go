package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
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
removed with rm. The store's snapshots are removed from here, with the
install's delete-capable credentials (Secret dr-store): nodes may hold
put/get-only ones. A snapshot under Object Lock is kept until its date.`,
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

// Run prunes the store from here, then the local copies on every server.
func (o *PruneOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	res, err := Prune(ctx, o.f, nodes, o.DryRun, o.ErrOut)
	if err != nil {
		return err
	}
	verb := "removed"
	if o.DryRun {
		verb = "would remove"
	}
	for _, r := range res.Removed {
		fmt.Fprintf(o.Out, "%s %s\n", verb, r)
	}
	for _, d := range res.Deferred {
		fmt.Fprintf(o.Out, "kept %s\n", d)
	}
	if len(res.Removed) == 0 && len(res.Deferred) == 0 {
		fmt.Fprintln(o.ErrOut, "nothing to prune")
	}
	return nil
}

// PruneResult is what an etcd prune removed, and what it left (each
// "NAME: why", e.g. under object lock until a date).
type PruneResult struct {
	Removed, Deferred []string
}

// Prune applies the agents' etcd retention: the leader says which
// scheduled snapshots it removes (a dry run, with its configuration), the
// plugin removes those from the store with its own delete-capable
// credentials (the nodes may hold put/get-only ones), then the leader and
// every other server prune their local copies.
func Prune(ctx context.Context, f cmdutil.Factory, nodes agentclient.Nodes, dryRun bool, errOut io.Writer) (PruneResult, error) {
	var res PruneResult
	leader, err := nodes.EtcdLeader()
	if err != nil {
		return res, err
	}
	plan, err := leader.Conn.PruneEtcdSnapshots(ctx, &agentv1.PruneEtcdSnapshotsRequest{DryRun: true})
	if err != nil {
		return res, fmt.Errorf("retention on %s: %s", leader.Node, agentclient.Explain(err))
	}
	store, serr := f.OpenStore(ctx)
	if serr != nil {
		fmt.Fprintf(errOut, "warning: the store cannot be opened from here (%v): the leader prunes it with its own credentials, which may not delete\n", serr)
	}
	if serr == nil && len(plan.Removed) > 0 {
		stored, _, err := dbsnap.ListStore(ctx, store)
		if err != nil {
			return res, fmt.Errorf("list the store's snapshots: %w", err)
		}
		for _, name := range plan.Removed {
			snap, ok := dbsnap.Find(stored, name)
			if !ok {
				continue
			}
			if !dryRun {
				err := dbsnap.DeleteFromStore(ctx, store, snap)
				var locked *objstore.LockedError
				if errors.As(err, &locked) {
					res.Deferred = append(res.Deferred, fmt.Sprintf("%s: under object lock until %s", name, locked.Until.UTC().Format(time.RFC3339)))
					continue
				}
				if err != nil {
					return res, fmt.Errorf("remove %s from the store: %w", name, err)
				}
			}
			res.Removed = append(res.Removed, name)
		}
	}
	// The leader prunes its copies (and the store, where the plugin could
	// not), then every other server its own local copies.
	order := []*agentclient.Node{leader}
	for _, n := range nodes {
		if n != leader && n.IsEtcdMember() {
			order = append(order, n)
		}
	}
	for _, n := range order {
		resp, err := n.Conn.PruneEtcdSnapshots(ctx, &agentv1.PruneEtcdSnapshotsRequest{DryRun: dryRun})
		if err != nil {
			return res, fmt.Errorf("prune on %s: %s", n.Node, agentclient.Explain(err))
		}
		for _, r := range resp.Removed {
			if !slices.Contains(res.Removed, r) {
				res.Removed = append(res.Removed, r)
			}
		}
		if n == leader && serr != nil {
			res.Deferred = append(res.Deferred, resp.Deferred...)
		}
	}
	return res, nil
}
