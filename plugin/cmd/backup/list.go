package backup

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

type listOptions struct {
	genericiooptions.IOStreams
	f      *cmdutil.Factory
	Output string
}

func newCmdList(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &listOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List backup sets, newest first",
		Long: `Lists the backup sets recorded in the store. It reads the store directly (the
install's Secret, or --store and credentials), so it works while the
cluster is down.`,
		Example: `  kubectl dr backup ls
  kubectl dr backup ls -o wide
  kubectl dr backup ls --store s3://backups/k3s --s3-endpoint https://minio:9000 --cluster-id UID`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := printers.ValidateOutput(o.Output); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			return o.Run(cmd.Context())
		},
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

func (o *listOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	sets, err := backupset.List(ctx, store)
	if err != nil {
		return err
	}
	list := printers.NewBackupSetList()
	for _, s := range sets {
		list.Items = append(list.Items, printers.NewBackupSet(s))
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
		Short: "Show one backup set part by part",
		Example: `  kubectl dr backup describe backup-20261121-101500
  kubectl dr backup describe before-upgrade -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("backup describe takes one NAME (kubectl dr backup ls lists them)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := printers.ValidateOutput(o.Output); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			if err := backupset.ValidateID(args[0]); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			store, err := o.f.OpenStore(cmd.Context())
			if err != nil {
				return err
			}
			set, err := backupset.Read(cmd.Context(), store, args[0])
			if err != nil {
				return err
			}
			switch o.Output {
			case printers.JSON, printers.YAML:
				return printers.Print(o.Out, o.Output, printers.NewBackupSet(set))
			case printers.Wide:
				return printers.Print(o.Out, o.Output, printers.NewBackupSet(set))
			}
			printers.DescribeBackupSet(o.Out, set)
			return nil
		},
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}
