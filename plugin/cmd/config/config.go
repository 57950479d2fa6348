package config

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdConfig returns the config command group.
func NewCmdConfig(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the agents' configuration (schedules, retention, paths, WAL sources)",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdGet(f, streams), NewCmdSet(f, streams))
	return cmd
}

func str(tree map[string]any, key string) string {
	s, _ := tree[key].(string)
	return s
}
