package cmd

import (
	"context"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/bucket"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/backup"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	drconfig "github.com/kubectl-dr/kubectl-dr/plugin/cmd/config"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/drill"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/objects"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/pg"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/prune"
	recovercmd "github.com/kubectl-dr/kubectl-dr/plugin/cmd/recover"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/restore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/status"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/version"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/wal"
)

// Execute runs kubectl dr with args under ctx, reports a failure on
// streams.ErrOut and returns the exit code (cmdutil.Report).
func Execute(ctx context.Context, f cmdutil.Factory, streams genericiooptions.IOStreams, args []string) int {
	root := NewRootCmd(f, streams)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	return cmdutil.Report(ctx, streams.ErrOut, c, err)
}

// NewRootCmd builds the kubectl dr command tree on f.
func NewRootCmd(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-dr",
		Short: "Backup and disaster recovery for k3s clusters",
		Long: `kubectl dr backs up a k3s cluster (etcd snapshots, local-path volumes with
restic, PostgreSQL WAL) to S3-compatible storage and restores it, with a
preview before anything changes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown verb is a usage error (exit 2), as any bad argument.
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cmdutil.UsageError("unknown command %q for \"kubectl dr\": kubectl dr --help lists them", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl dr",
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	f.BindFlags(root.PersistentFlags())
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return agentNamespaceFromN(cmd) }
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return cmdutil.UsageError("%w", err)
	})

	root.AddGroup(
		&cobra.Group{ID: "backup", Title: "Backup and restore:"},
		&cobra.Group{ID: "cluster", Title: "Cluster:"},
		&cobra.Group{ID: "other", Title: "Other:"},
	)
	add := func(group string, c *cobra.Command) {
		c.GroupID = group
		root.AddCommand(c)
	}
	add("backup", backup.NewCmdBackup(f, streams))
	add("backup", restore.NewCmdRestore(f, streams))
	add("backup", etcd.NewCmdEtcd(f, streams))
	add("backup", wal.NewCmdWAL(f, streams))
	add("backup", pg.NewCmdPG(f, streams))
	add("backup", bucket.NewCmdBucket(f, streams))
	add("backup", objects.NewCmdObjects(f, streams))
	add("backup", recovercmd.NewCmdRecover(f, streams))
	add("backup", drill.NewCmdDrill(f, streams))
	add("backup", prune.NewCmdPrune(f, streams))
	add("cluster", status.NewCmdStatus(f, streams))
	add("cluster", install.NewCmdInstall(f, streams))
	add("cluster", install.NewCmdUninstall(f, streams))
	add("cluster", drconfig.NewCmdConfig(f, streams))
	add("other", version.NewCmdVersion(streams))
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

// agentNamespaceFromN gives kubectl's -n/--namespace its kubectl meaning
// for kubectl dr: the namespace the command works in, which is the agents'
// (no verb acts on a user namespace). It is never silently ignored: alone
// it selects the agents' namespace; with a different --agent-namespace it
// is refused.
func agentNamespaceFromN(cmd *cobra.Command) error {
	n, agent := cmd.Flags().Lookup("namespace"), cmd.Flags().Lookup("agent-namespace")
	if n == nil || agent == nil || !n.Changed {
		return nil
	}
	switch {
	case !agent.Changed:
		return agent.Value.Set(n.Value.String())
	case agent.Value.String() != n.Value.String():
		return cmdutil.UsageError("-n %s and --agent-namespace %s disagree: the agents' namespace is given once (--agent-namespace, or -n)", n.Value, agent.Value)
	}
	return nil
}
