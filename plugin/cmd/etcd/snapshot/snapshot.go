// Package snapshot implements `kubectl dr etcd snapshot save|ls|describe|rm|prune`.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdSnapshot returns the snapshot command group.
func NewCmdSnapshot(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snapshots"},
		Short:   "Save, list, describe, remove and prune etcd snapshots",
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.AddStoreFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newCmdSave(f, streams),
		newCmdList(f, streams),
		newCmdDescribe(f, streams),
		newCmdRemove(f, streams),
		newCmdPrune(f, streams),
	)
	return cmd
}

// catalog is every snapshot known: the store's, through an agent when one
// answers (plus local copies not uploaded, from every etcd agent), else
// read directly from the store.
func catalog(ctx context.Context, f *cmdutil.Factory, errOut io.Writer) ([]*etcdsnap.Snapshot, error) {
	nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
	if err == nil {
		defer nodes.Close()
		var out []*etcdsnap.Snapshot
		answered := false
		seen := map[string]bool{}
		for _, n := range nodes {
			if !n.Ready() {
				continue
			}
			resp, err := n.Conn.ListEtcdSnapshots(ctx, &agentv1.ListEtcdSnapshotsRequest{IncludeLocal: true})
			if err != nil {
				fmt.Fprintf(errOut, "warning: node %s: list snapshots: %s\n", n.Node, agentclient.Explain(err))
				continue
			}
			answered = true
			for _, p := range resp.Snapshots {
				if s := etcdsnap.FromProto(p); !seen[s.Name] {
					seen[s.Name] = true
					out = append(out, s)
				}
			}
		}
		if answered {
			etcdsnap.SortNewestFirst(out)
			return out, nil
		}
	}
	store, serr := f.OpenStore(ctx)
	if serr != nil {
		if err == nil {
			err = errors.New("no agent answered")
		}
		return nil, fmt.Errorf("%v, and the store cannot be read directly: %w", err, serr)
	}
	fmt.Fprintf(errOut, "no agent answered; reading %s directly (local copies on the nodes are not shown)\n", store)
	return etcdsnap.ListStore(ctx, store)
}
