package cmdutil

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// completionTimeout bounds what one completion may ask: a shell is waiting.
const completionTimeout = 5 * time.Second

// Complete turns list into a dynamic completion (cobra's
// ValidArgsFunction) for the first maxArgs arguments (0: any number):
// the listed names that start with what is typed and are not given
// already, never file names. A failing list completes nothing and says
// why where the shell shows completion errors.
func Complete(maxArgs int, list func(ctx context.Context) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if maxArgs > 0 && len(args) >= maxArgs {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeFrom(cmd, args, toComplete, list)
	}
}

// CompleteFlag is Complete for a flag's value.
func CompleteFlag(list func(ctx context.Context) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeFrom(cmd, nil, toComplete, list)
	}
}

func completeFrom(cmd *cobra.Command, given []string, prefix string, list func(ctx context.Context) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	names, err := list(ctx)
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !slices.Contains(given, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// NodeNames lists the nodes that have an agent, without dialling any.
func NodeNames(f Factory) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		targets, err := agentclient.Resolve(ctx, f.AgentOptions(nil))
		if err != nil {
			return nil, err
		}
		var out []string
		for _, t := range targets {
			out = append(out, t.Node)
		}
		return out, nil
	}
}

// BackupSetNames lists the backup sets in the store, newest first.
func BackupSetNames(f Factory) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		store, err := f.OpenStore(ctx)
		if err != nil {
			return nil, err
		}
		sets, _, err := backupset.List(ctx, store)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range sets {
			out = append(out, s.ID)
		}
		return out, nil
	}
}

// WALSourceNames lists the WAL sources the agents ship.
func WALSourceNames(f Factory) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
		if err != nil {
			return nil, err
		}
		defer nodes.Close()
		var out []string
		for _, n := range nodes {
			if !n.Ready() {
				continue
			}
			resp, err := n.Conn.WALStatus(ctx, &agentv1.WALStatusRequest{})
			if err != nil {
				continue
			}
			for _, s := range resp.Sources {
				out = append(out, s.Name)
			}
		}
		return out, nil
	}
}
