package drill

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr drill ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Output string
}

// NewCmdList returns `kubectl dr drill ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the drills' reports, newest first",
		Long: `Lists the drill reports kept in the store (drills/<id>.json): pass or fail,
the measured RTO, the oldest layer's RPO, who ran it. It reads the store
directly, so it works while the cluster is down.`,
		Example: `  kubectl dr drill ls
  kubectl dr drill ls -o json`,
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

// Run reads the reports and prints them.
func (o *ListOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	reports, skipped, err := drillreport.List(ctx, store)
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		fmt.Fprintln(o.ErrOut, "warning:", sk)
	}
	list := printers.NewDrillList()
	for _, r := range reports {
		list.Items = append(list.Items, printers.NewDrillReport(r))
	}
	return printers.Print(o.Out, o.Output, list)
}
