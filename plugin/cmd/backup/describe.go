package backup

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// DescribeOptions for `kubectl dr backup describe`.
type DescribeOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name   string
	Output string
}

// NewCmdDescribe returns `kubectl dr backup describe`.
func NewCmdDescribe(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DescribeOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show one backup set part by part",
		Example: `  kubectl dr backup describe backup-20261121-101500
  kubectl dr backup describe before-upgrade -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("backup describe takes one NAME (kubectl dr backup ls lists them)")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.BackupSetNames(f)),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes NAME.
func (o *DescribeOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	return nil
}

// Validate checks -o and the name.
func (o *DescribeOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if err := backupset.ValidateID(o.Name); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	return nil
}

// Run reads the set and prints it: described part by part, or as the
// table row (-o wide), JSON or YAML.
func (o *DescribeOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	set, err := backupset.Read(ctx, store, o.Name)
	if err != nil {
		return err
	}
	switch o.Output {
	case printers.JSON, printers.YAML, printers.Wide:
		return printers.Print(o.Out, o.Output, printers.NewBackupSet(set))
	}
	printers.DescribeBackupSet(o.Out, set)
	return nil
}
