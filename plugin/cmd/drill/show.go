package drill

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
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
	// A report is evidence that a recovery was rehearsed: shown with who
	// vouches for it; one changed since, or signed by a node for a drill
	// it did not run, is refused. Reports from before signatures show,
	// saying so.
	r, who, err := drillreport.Verified(ctx, store, cmdutil.RecordPolicy(ctx, o.f, true), o.ID)
	if err != nil {
		return err
	}
	signedBy := who.String()
	if who == (signature.Who{}) {
		signedBy = ""
		fmt.Fprintf(o.ErrOut, "warning: drill report %s is not signed: written before kubectl dr signed its records, or by an agent not enrolled; nothing vouches that it is what ran\n", r.ID)
	}
	if o.Output == HTML {
		page, err := drillreport.ReadHTML(ctx, store, r)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(page)
		return err
	}
	view := printers.NewDrillReport(r)
	view.SignedBy = signedBy
	return printers.Print(o.Out, o.Output, view)
}
