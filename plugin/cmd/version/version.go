package version

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Options for `kubectl dr version`. It takes no factory: printing the
// version sets up no client.
type Options struct {
	genericiooptions.IOStreams

	Output string
}

// NewCmdVersion returns the version command.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl dr",
		Args:  cmdutil.NoArgs,
		RunE:  cmdutil.RunE(o),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete has nothing to resolve.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate checks -o.
func (o *Options) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run prints this build's version.
func (o *Options) Run(context.Context) error {
	return printers.Print(o.Out, o.Output, newView(buildinfo.Get()))
}

type view struct {
	printers.Version
}

func newView(bi buildinfo.Info) *view {
	v := &view{}
	v.APIVersion = printers.APIVersion
	v.Kind = "Version"
	v.Info = bi
	return v
}

func (v *view) DeepCopyObject() runtime.Object { c := *v; return &c }

func (v *view) Columns(bool) []string { return []string{"CLIENT", "GO", "PLATFORM", "COMMIT"} }

func (v *view) Rows(bool) [][]string {
	commit := v.Info.Commit
	if commit == "" {
		commit = "-"
	}
	return [][]string{{v.Info.Version, v.Info.GoVersion, v.Info.Platform, fmt.Sprint(commit)}}
}
