package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// RemoveOptions for `kubectl dr backup rm`.
type RemoveOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Names []string
}

// NewCmdRemove returns `kubectl dr backup rm`.
func NewCmdRemove(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RemoveOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Remove backup sets: their restic snapshots (pruned), etcd snapshot and record",
		Long: `Removes each set's restic snapshots (restic forget --prune: data no other
snapshot uses is freed), its etcd snapshot and finally its record. Another
set's data is never touched. A removal cut short can be run again.`,
		Example: `  kubectl dr backup rm backup-20261121-101500`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.UsageError("backup rm takes one or more NAMEs (kubectl dr backup ls lists them)")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(0, cmdutil.BackupSetNames(f)),
	}
	return cmd
}

// Complete takes the NAMEs.
func (o *RemoveOptions) Complete(_ *cobra.Command, args []string) error {
	o.Names = args
	return nil
}

// Validate checks every name before anything is removed.
func (o *RemoveOptions) Validate() error {
	for _, a := range o.Names {
		if err := backupset.ValidateID(a); err != nil {
			return cmdutil.UsageError("%w", err)
		}
	}
	return nil
}

// Run removes each set, its data first and its record last.
func (o *RemoveOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	var sets []*backupset.Set
	for _, id := range o.Names {
		s, err := backupset.Read(ctx, store, id)
		if err != nil {
			return err
		}
		sets = append(sets, s)
	}
	nodes, connErr := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	defer nodes.Close()
	for _, s := range sets {
		if err := o.remove(ctx, store, nodes, connErr, s); err != nil {
			return fmt.Errorf("remove %s: %w (nothing after that step was removed; run it again)", s.ID, err)
		}
		fmt.Fprintf(o.Out, "backup %s removed\n", s.ID)
	}
	return nil
}

func (o *RemoveOptions) remove(ctx context.Context, store objstore.Store, nodes agentclient.Nodes, connErr error, s *backupset.Set) error {
	hasFiles := false
	for _, p := range s.Files {
		if p.SnapshotID != "" {
			hasFiles = true
		}
	}
	if hasFiles {
		// restic forget and prune delete: the node gets the install's
		// delete-capable credentials for this request.
		creds, err := cmdutil.DeleteCredentials(ctx, o.f)
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %v; the node forgets with its own credentials\n", err)
		}
		removed, err := forgetSet(ctx, nodes, connErr, s.ID, creds)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "%s: forgot %d restic snapshot(s) and pruned\n", s.ID, len(removed))
	}
	if s.Etcd != nil && s.Etcd.Snapshot != "" {
		if err := o.removeEtcd(ctx, store, nodes, s.Etcd); err != nil {
			return err
		}
	}
	return backupset.Delete(ctx, store, s.ID)
}

// removeEtcd removes the set's etcd snapshot from the store from here,
// with the install's delete-capable credentials (the nodes may hold
// put/get-only ones), then the local copy through the agent of the node
// that took it when it answers.
func (o *RemoveOptions) removeEtcd(ctx context.Context, store objstore.Store, nodes agentclient.Nodes, part *backupset.EtcdPart) error {
	list, _, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return err
	}
	if snap, ok := dbsnap.Find(list, part.Snapshot); ok {
		if err := dbsnap.DeleteFromStore(ctx, store, snap); err != nil {
			return err
		}
	}
	if n, ok := nodes.Find(part.Node); ok && n.Ready() {
		_, err := n.Conn.DeleteEtcdSnapshots(ctx, &agentv1.DeleteEtcdSnapshotsRequest{Names: []string{part.Snapshot}})
		if err == nil || status.Code(err) == codes.NotFound {
			return nil
		}
		return fmt.Errorf("delete etcd snapshot %s on %s: %s", part.Snapshot, n.Node, agentclient.Explain(err))
	}
	fmt.Fprintf(o.ErrOut, "warning: node %s does not answer: its local copy of %s stays in its snapshots directory\n", part.Node, part.Snapshot)
	return nil
}

// forgetSet asks one agent with file backups on to forget the set's restic
// snapshots; the repository is shared, so any node can.
func forgetSet(ctx context.Context, nodes agentclient.Nodes, connErr error, id string, creds *agentv1.StoreCredentials) ([]string, error) {
	var errs []string
	for _, n := range readyNodes(nodes) {
		stream, err := n.Conn.ForgetFileSnapshots(ctx, &agentv1.ForgetFileSnapshotsRequest{BackupSet: id, Prune: true, StoreCredentials: creds})
		if err == nil {
			var res *agentv1.ForgetResult
			for {
				msg, rerr := stream.Recv()
				if rerr != nil {
					if res != nil && agentclient.IsEOF(rerr) {
						return res.RemovedSnapshots, nil
					}
					err = rerr
					break
				}
				if r := msg.GetResult(); r != nil {
					res = r
				}
			}
		}
		if status.Code(err) == codes.FailedPrecondition {
			errs = append(errs, n.Node+": "+status.Convert(err).Message())
			continue // files off on this node; try another
		}
		return nil, fmt.Errorf("forget restic snapshots on %s: %s", n.Node, agentclient.Explain(err))
	}
	if connErr != nil {
		return nil, fmt.Errorf("its restic snapshots can only be removed through an agent: %w", connErr)
	}
	if len(errs) == 0 {
		return nil, errors.New("its restic snapshots can only be removed through an agent, and none answers")
	}
	return nil, fmt.Errorf("no agent could remove its restic snapshots: %s", strings.Join(errs, "; "))
}
