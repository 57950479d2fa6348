package backup

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdBackup returns the backup command group.
func NewCmdBackup(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "backup",
		Aliases: []string{"backups"},
		Short:   "Create, list, describe, verify and remove cluster-wide backup sets",
		Long: `A backup set is one etcd snapshot (taken on the etcd leader) plus one restic
snapshot of the configured paths on every node (by default k3s's local-path
volumes under /var/lib/rancher/k3s/storage), made in parallel. Its record,
sets/<name>.json in the store, is written last: Completed, or PartiallyFailed
naming each part that failed and why.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.BindStoreFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		NewCmdCreate(f, streams),
		NewCmdList(f, streams),
		NewCmdDescribe(f, streams),
		NewCmdRemove(f, streams),
		NewCmdVerify(f, streams),
	)
	return cmd
}

// readyNodes are the nodes whose agents answer. Any of them can run the
// repository-wide restic commands: the repository is shared by all nodes.
func readyNodes(nodes agentclient.Nodes) []*agentclient.Node {
	var out []*agentclient.Node
	for _, n := range nodes {
		if n.Ready() {
			out = append(out, n)
		}
	}
	return out
}
