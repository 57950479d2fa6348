// Package version implements `kubectl dr version`; it needs no cluster.
package version

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// NewCmdVersion returns the version command.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl dr",
		Args:  cmdutil.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := printers.ValidateOutput(output); err != nil {
				return cmdutil.UsageError("%w", err)
			}
			return printers.Print(streams.Out, output, newView(buildinfo.Get()))
		},
	}
	printers.OutputFlag(cmd, &output)
	return cmd
}

type view struct {
	printers.Version
}

func newView(bi buildinfo.Info) *view {
	v := &view{}
	v.APIVersion = printers.GroupVersion.String()
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
