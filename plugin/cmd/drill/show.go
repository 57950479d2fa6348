package drill

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// HTML is the -o of `drill show` that prints the report's page.
const HTML = "html"

// ShowOptions for `kubectl dr drill show`.
type ShowOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	ID     string
	Output string
}

// NewCmdShow returns `kubectl dr drill show`.
func NewCmdShow(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ShowOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print one drill's report (-o html: its page, with the timeline)",
		Example: `  kubectl dr drill show drill-20261201-120000
  kubectl dr drill show drill-20261201-120000 -o json
  kubectl dr drill show drill-20261201-120000 -o html > report.html`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("drill show takes one drill ID (kubectl dr drill ls lists them), got %q", args)
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", printers.Table, "output format: table, json, yaml or html")
	return cmd
}

// Complete takes ID.
func (o *ShowOptions) Complete(_ *cobra.Command, args []string) error {
	o.ID = args[0]
	return nil
}

// Validate checks -o and the id.
func (o *ShowOptions) Validate() error {
	if o.Output != HTML {
		if err := cmdutil.ValidateOutput(o.Output); err != nil {
			return cmdutil.UsageError("%v, or html", err)
		}
	}
	if err := drillreport.ValidateID(o.ID); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	return nil
}

// Run reads the report and prints it.
func (o *ShowOptions) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	r, err := drillreport.Read(ctx, store, o.ID)
	if err != nil {
		return err
	}
	if o.Output == HTML {
		page, err := drillreport.ReadHTML(ctx, store, r)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(page)
		return err
	}
	return printers.Print(o.Out, o.Output, printers.NewDrillReport(r))
}
