package snapshot

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

type listOptions struct {
	genericiooptions.IOStreams
	f      *cmdutil.Factory
	Output string
	Node   string
}

func newCmdList(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &listOptions{IOStreams: streams, f: f}
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := printers.ValidateOutput(o.Output); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Node, "node", "", "only snapshots taken on this node")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

func (o *listOptions) Run(ctx context.Context) error {
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

type describeOptions struct {
	genericiooptions.IOStreams
	f      *cmdutil.Factory
	Output string
}

func newCmdDescribe(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &describeOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show everything recorded about one etcd snapshot",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("%s needs exactly one snapshot name", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := printers.ValidateOutput(o.Output); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			nodes, connErr := connect(cmd.Context(), o.f)
			defer nodes.Close()
			all, err := catalog(cmd.Context(), o.f, nodes, connErr, o.ErrOut)
			if err != nil {
				return err
			}
			s, ok := dbsnap.Find(all, args[0])
			if !ok {
				return fmt.Errorf("no etcd snapshot named %q: `kubectl dr etcd snapshot ls` lists them", args[0])
			}
			return printers.Print(o.Out, o.Output, printers.NewEtcdSnapshot(s))
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", printers.YAML, "output format: yaml, json, table or wide")
	return cmd
}
