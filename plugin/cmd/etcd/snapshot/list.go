package snapshot

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr etcd snapshot ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Output string
	Node   string
}

// NewCmdList returns `kubectl dr etcd snapshot ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List etcd snapshots, newest first",
		Long: `Lists the cluster's etcd snapshots in the store, and local copies that are
not uploaded yet. When no agent answers (the cluster is down), reads the
store directly with --store and its credentials.`,
		Example: `  kubectl dr etcd snapshot ls
  # cluster down: read the store directly
  kubectl dr etcd snapshot ls --store s3://backups/k3s --s3-endpoint https://minio:9000 --cluster-id UID`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.Node, "node", "", "only snapshots taken on this node")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete has nothing to resolve.
func (o *ListOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks -o.
func (o *ListOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run lists the catalog.
func (o *ListOptions) Run(ctx context.Context) error {
	nodes, connErr := connect(ctx, o.f)
	defer nodes.Close()
	all, err := catalog(ctx, o.f, nodes, connErr, o.ErrOut)
	if err != nil {
		return err
	}
	list := printers.NewEtcdSnapshotList()
	for _, s := range all {
		if o.Node == "" || s.Node == o.Node {
			list.Items = append(list.Items, printers.NewEtcdSnapshot(s))
		}
	}
	if len(list.Items) == 0 && o.Output != printers.JSON && o.Output != printers.YAML {
		fmt.Fprintln(o.ErrOut, "No etcd snapshots found.")
		return nil
	}
	return printers.Print(o.Out, o.Output, list)
}
