package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/kubectl-dr/kubectl-dr/agent/server"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
)

// NewRootCmd builds the dr-agent command tree.
func NewRootCmd(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "dr-agent",
		Short:         "kubectl dr node agent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newServeCmd(errOut), newVersionCmd(out), newWALCmd(), newEtcdCmd(out))
	return root
}

func newServeCmd(errOut io.Writer) *cobra.Command {
	var configFile string
	var opts server.RunOptions
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Serve the agent's gRPC API (mTLS) for kubectl dr",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Run names the node in every line once the file is read
			// (its nodeName, else $NODE_NAME, else the host name).
			log := slog.New(slog.NewJSONHandler(errOut, nil))
			return server.Run(cmd.Context(), configFile, opts, log)
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "/etc/dr-agent/config.yaml", "agent configuration file")
	cmd.Flags().StringVar(&opts.HostKeysSHA256, "host-keys-sha256", "", "refuse a configuration whose host keys (host commands and directories) are not the ones with this digest (kubectl dr install sets it in the DaemonSet)")
	cmd.Flags().BoolVar(&opts.AllowRemoteListen, "allow-remote-listen", false, "serve gRPC and metrics on the addresses configured even when other hosts can reach them (default: loopback only)")
	return cmd
}

func newVersionCmd(out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			bi := buildinfo.Get()
			_, err := fmt.Fprintf(out, "dr-agent %s (%s, %s)\n", bi.Version, bi.GoVersion, bi.Platform)
			return err
		},
	}
}
