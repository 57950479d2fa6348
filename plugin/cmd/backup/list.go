package backup

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr backup ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Output string
}

// NewCmdList returns `kubectl dr backup ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
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
		RunE: cmdutil.RunE(o),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete has nothing to resolve.
func (o *ListOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks -o.
func (o *ListOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run reads the sets from the store and prints them.
func (o *ListOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	sets, skipped, err := backupset.List(ctx, store)
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		fmt.Fprintln(o.ErrOut, "warning:", sk)
	}
	list := printers.NewBackupSetList()
	for _, s := range sets {
		list.Items = append(list.Items, printers.NewBackupSet(s))
	}
	return printers.Print(o.Out, o.Output, list)
}
