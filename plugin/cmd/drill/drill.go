package drill

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdDrill returns `kubectl dr drill`, which runs a drill, with ls and
// show under it.
func NewCmdDrill(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := NewCmdRun(f, streams)
	cmd.AddCommand(NewCmdList(f, streams), NewCmdShow(f, streams))
	return cmd
}
