package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// NewCmdPG returns the pg command group.
func NewCmdPG(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "PostgreSQL base backups and point-in-time restore",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdBaseBackup(f, streams), NewCmdList(f, streams), NewCmdPrune(f, streams), NewCmdRestore(f, streams))
	return cmd
}

// connectSource reaches the agents and the one that ships source; the
// caller closes nodes.
func connectSource(ctx context.Context, f cmdutil.Factory, source string) (agentclient.Nodes, *agentclient.Node, error) {
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

// baseBackupView is a base backup as pg ls and pg prune print it.
func baseBackupView(b *agentv1.BaseBackupResult, action string) printers.BaseBackup {
	return printers.BaseBackup{
		Source: b.Source, Node: b.Node, ID: b.Id, StartTime: b.StartTime.AsTime(), StopTime: b.StopTime.AsTime(),
		StartLSN: b.StartLsn, StopLSN: b.StopLsn, Timeline: b.Timeline, SizeBytes: b.SizeBytes, Action: action,
	}
}
