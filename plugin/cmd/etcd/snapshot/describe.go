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

// DescribeOptions for `kubectl dr etcd snapshot describe`.
type DescribeOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name   string
	Output string
}

// NewCmdDescribe returns `kubectl dr etcd snapshot describe`.
func NewCmdDescribe(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DescribeOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show everything recorded about one etcd snapshot",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("%s needs exactly one snapshot name", cmd.CommandPath())
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, Names(f)),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", printers.YAML, "output format: yaml, json, table or wide")
	return cmd
}

// Complete takes NAME.
func (o *DescribeOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	return nil
}

// Validate checks -o.
func (o *DescribeOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run finds the snapshot in the catalog and prints it.
func (o *DescribeOptions) Run(ctx context.Context) error {
	nodes, connErr := connect(ctx, o.f)
	defer nodes.Close()
	all, err := catalog(ctx, o.f, nodes, connErr, o.ErrOut)
	if err != nil {
		return err
	}
	s, ok := dbsnap.Find(all, o.Name)
	if !ok {
		return fmt.Errorf("no etcd snapshot named %q: `kubectl dr etcd snapshot ls` lists them", o.Name)
	}
	return printers.Print(o.Out, o.Output, printers.NewEtcdSnapshot(s))
}
