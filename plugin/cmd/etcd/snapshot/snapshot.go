package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdSnapshot returns the snapshot command group.
func NewCmdSnapshot(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snapshots"},
		Short:   "Save, import, list, describe, remove and prune etcd snapshots",
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.BindStoreFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		NewCmdSave(f, streams),
		NewCmdList(f, streams),
		NewCmdDescribe(f, streams),
		NewCmdRemove(f, streams),
		NewCmdPrune(f, streams),
		NewCmdDownload(f, streams),
		NewCmdImport(f, streams),
	)
	return cmd
}

// connect reaches every agent that answers. Callers keep the nodes for
// what follows the listing; connErr (no agent found at all) is not fatal,
// since the store may still be read directly.
func connect(ctx context.Context, f cmdutil.Factory) (nodes agentclient.Nodes, connErr error) {
	return agentclient.Connect(ctx, f.AgentOptions(nil))
}

// catalog is every snapshot known: the store's, through an agent when one
// can list it, else read directly from the store; plus local copies not
// uploaded, from every agent that answers.
func catalog(ctx context.Context, f cmdutil.Factory, nodes agentclient.Nodes, connErr error, errOut io.Writer) ([]*dbsnap.Snapshot, error) {
	var (
		out       []*dbsnap.Snapshot
		seen      = map[string]bool{}
		haveStore bool
		errs      []error
		warned    = map[string]bool{}
	)
	// Every agent lists the same store: each unusable record is named once.
	warn := func(skipped string) {
		if !warned[skipped] {
			warned[skipped] = true
			fmt.Fprintln(errOut, "warning:", skipped)
		}
	}
	add := func(s *dbsnap.Snapshot) {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s)
		}
	}
	if connErr != nil {
		errs = append(errs, connErr)
	}
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		resp, err := n.Conn.ListEtcdSnapshots(ctx, &agentv1.ListEtcdSnapshotsRequest{IncludeLocal: true})
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err)))
			continue
		}
		for _, sk := range resp.Skipped {
			warn(sk)
		}
		if resp.StoreError != "" {
			errs = append(errs, fmt.Errorf("node %s cannot list the store: %s", n.Node, resp.StoreError))
		} else {
			haveStore = true
		}
		for _, p := range resp.Snapshots {
			add(agentclient.SnapshotFromProto(p))
		}
	}
	if !haveStore {
		store, err := f.OpenStore(ctx)
		if err == nil {
			var list []*dbsnap.Snapshot
			var skipped []drstore.Skipped
			if list, skipped, err = dbsnap.ListStore(ctx, store); err == nil {
				fmt.Fprintf(errOut, "no agent could list the store; read %s directly\n", store)
				for _, sk := range skipped {
					warn(sk.String())
				}
				for _, s := range list {
					add(s)
				}
				haveStore = true
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read the store directly: %w", err))
		}
	}
	if !haveStore {
		if len(out) == 0 {
			return nil, fmt.Errorf("cannot list etcd snapshots: %w", errors.Join(errs...))
		}
		fmt.Fprintf(errOut, "warning: the store could not be listed (%v); showing local copies only\n", errors.Join(errs...))
	}
	dbsnap.SortNewestFirst(out)
	return out, nil
}

// Names lists every snapshot's name as ls finds them, for completion.
func Names(f cmdutil.Factory) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		nodes, connErr := connect(ctx, f)
		defer nodes.Close()
		all, err := catalog(ctx, f, nodes, connErr, io.Discard)
		if err != nil {
			return nil, err
		}
		out := make([]string, 0, len(all))
		for _, s := range all {
			out = append(out, s.Name)
		}
		return out, nil
	}
}
