package objects

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdObjects returns the objects command group.
func NewCmdObjects(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "objects",
		Aliases: []string{"object", "obj"},
		Short:   "Browse and restore Kubernetes objects from etcd snapshots",
		Long: `Reads a restore point (an etcd snapshot in the store, by name, by backup set
or the newest) without touching the cluster: the snapshot is fetched and
verified, opened read-only, and the objects under /registry/ decoded
(Secrets encrypted at rest with the encryption config kept beside the
snapshot). restore applies chosen objects back with server-side apply.
Here -n is the namespace of the objects, not the agents'.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		// -n names the objects' namespace here: the root's hook, which
		// makes -n the agents' namespace, does not run.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
	}
	f.BindStoreFlags(cmd.PersistentFlags())
	cmd.AddCommand(NewCmdList(f, streams), NewCmdGet(f, streams), NewCmdDiff(f, streams), NewCmdRestore(f, streams))
	return cmd
}
