package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

func newCmdLs(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls [SOURCE]",
		Aliases: []string{"list"},
		Short:   "List base backups, oldest first",
		Long: `Lists the base backups in the store (of SOURCE, or of every source): when
each finished, the WAL it spans and its size. A point-in-time restore can go
to any time after the oldest one's end. Any agent answers: the records are in
the store, so the database's node need not be up.`,
		Example: `  kubectl dr pg ls
  kubectl dr pg ls pg-main -o wide`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("pg ls takes at most one SOURCE")
			}
			return printers.ValidateOutput(output)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			source := ""
			if len(args) == 1 {
				source = args[0]
			}
			nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
			if err != nil {
				return err
			}
			defer nodes.Close()
			list, err := listBaseBackups(ctx, nodes, source)
			if err != nil {
				return err
			}
			view := printers.NewBaseBackupList()
			for _, b := range list {
				view.Items = append(view.Items, baseBackupView(b, ""))
			}
			if len(list) == 0 && (output == printers.Table || output == printers.Wide) {
				return noBaseBackups(ctx, nodes, source, streams.ErrOut)
			}
			return printers.Print(streams.Out, output, view)
		},
	}
	printers.OutputFlag(cmd, &output)
	return cmd
}

// listBaseBackups asks the agents in turn until one answers.
func listBaseBackups(ctx context.Context, nodes agentclient.Nodes, source string) ([]*agentv1.BaseBackupResult, error) {
	var errs []error
	for _, n := range nodes {
		if !n.Ready() {
			errs = append(errs, fmt.Errorf("node %s is not reachable: %v", n.Node, n.Err))
			continue
		}
		resp, err := n.Conn.ListBaseBackups(ctx, &agentv1.ListBaseBackupsRequest{Source: source})
		if err == nil {
			return resp.BaseBackups, nil
		}
		errs = append(errs, fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err)))
	}
	return nil, fmt.Errorf("no agent could list base backups: %w", errors.Join(errs...))
}

// noBaseBackups says so, and which sources do have some.
func noBaseBackups(ctx context.Context, nodes agentclient.Nodes, source string, errOut io.Writer) error {
	if source == "" {
		fmt.Fprintln(errOut, "No base backups in the store (kubectl dr pg basebackup SOURCE takes one).")
		return nil
	}
	var others []string
	if all, err := listBaseBackups(ctx, nodes, ""); err == nil {
		for _, b := range all {
			if !slices.Contains(others, b.Source) {
				others = append(others, b.Source)
			}
		}
	}
	fmt.Fprintf(errOut, "No base backups of %s in the store (kubectl dr pg basebackup %s takes one).", source, source)
	if len(others) > 0 {
		fmt.Fprintf(errOut, " Sources with base backups: %s.", strings.Join(others, ", "))
	}
	fmt.Fprintln(errOut)
	return nil
}

// baseBackupView is a base backup as pg ls and pg prune print it.
func baseBackupView(b *agentv1.BaseBackupResult, action string) printers.BaseBackup {
	return printers.BaseBackup{
		Source: b.Source, Node: b.Node, ID: b.Id, StartTime: b.StartTime.AsTime(), StopTime: b.StopTime.AsTime(),
		StartLSN: b.StartLsn, StopLSN: b.StopLsn, Timeline: b.Timeline, SizeBytes: b.SizeBytes, Action: action,
	}
}
