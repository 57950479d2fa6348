package etcd

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd/etcdrestore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd/snapshot"
)

// NewCmdEtcd returns the etcd command; "datastore" is its other name,
// for k3s servers on SQLite (docs/sqlite.md says why both).
func NewCmdEtcd(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "etcd",
		Aliases: []string{"datastore"},
		Short:   "k3s datastore snapshots and restore (embedded etcd, or SQLite through kine)",
		Args:    cmdutil.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(snapshot.NewCmdSnapshot(f, streams), etcdrestore.NewCmdRestore(f, streams))
	return cmd
}
