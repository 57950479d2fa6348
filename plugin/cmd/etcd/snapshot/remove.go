package snapshot

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// RemoveOptions for `kubectl dr etcd snapshot rm`.
type RemoveOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Names []string
}

// NewCmdRemove returns `kubectl dr etcd snapshot rm`.
func NewCmdRemove(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RemoveOptions{IOStreams: streams, f: f}
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Remove etcd snapshots from the store and from their node",
		Long: `Removes each named snapshot: its metadata first (so it is never listed half
removed), then its data in the store, then the local copy on the node that
took it. Every name is checked before anything is removed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.UsageError("%s needs at least one snapshot name", cmd.CommandPath())
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(0, Names(f)),
	}
}

// Complete takes the NAMEs.
func (o *RemoveOptions) Complete(_ *cobra.Command, args []string) error {
	o.Names = args
	return nil
}

// Validate checks every name before anything is asked.
func (o *RemoveOptions) Validate() error {
	for _, a := range o.Names {
		if err := dbsnap.ValidateName(a); err != nil {
			return cmdutil.UsageError("%w", err)
		}
	}
	return nil
}

// Run finds every snapshot, then removes them: through the node that took
// each, else from the store.
func (o *RemoveOptions) Run(ctx context.Context) error {
	names := o.Names
	nodes, connErr := connect(ctx, o.f)
	defer nodes.Close()
	all, err := catalog(ctx, o.f, nodes, connErr, o.ErrOut)
	if err != nil {
		return err
	}
	var missing []string
	var snaps []*dbsnap.Snapshot
	for _, n := range names {
		s, ok := dbsnap.Find(all, n)
		if !ok {
			missing = append(missing, n)
			continue
		}
		snaps = append(snaps, s)
	}
	if len(missing) > 0 {
		return fmt.Errorf("no etcd snapshot named %s: nothing removed", strings.Join(missing, ", "))
	}

	// The store's copy goes from here, with the install's delete-capable
	// credentials (the nodes may hold put/get-only ones); then the node
	// that took it removes its local copy.
	var store objstore.Store
	for _, s := range snaps {
		inStore := false
		if s.Uploaded {
			if store == nil {
				if store, err = o.f.OpenStore(ctx); err != nil {
					return fmt.Errorf("remove %s: the store cannot be opened from here: %w", s.Name, err)
				}
			}
			if err := dbsnap.DeleteFromStore(ctx, store, s); err != nil {
				return fmt.Errorf("remove %s: %w", s.Name, err)
			}
			inStore = true
		}
		if n, ok := nodes.Find(s.Node); ok && n.Ready() {
			_, err := n.Conn.DeleteEtcdSnapshots(ctx, &agentv1.DeleteEtcdSnapshotsRequest{Names: []string{s.Name}})
			if err != nil && !(inStore && status.Code(err) == codes.NotFound) {
				return fmt.Errorf("remove %s on %s: %s", s.Name, s.Node, agentclient.Explain(err))
			}
			fmt.Fprintf(o.Out, "removed %s\n", s.Name)
			continue
		}
		if !inStore {
			return fmt.Errorf("remove %s: it exists only on node %s, whose agent does not answer", s.Name, s.Node)
		}
		fmt.Fprintf(o.Out, "removed %s from the store (the copy on %s stays: its agent does not answer)\n", s.Name, s.Node)
	}
	return nil
}
