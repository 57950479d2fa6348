package cmdutil

import (
	"context"

	"github.com/spf13/cobra"
)

// Verb is the skeleton of every command (kubernetes/sample-cli-plugin):
// its options take flags and arguments in Complete, check them in Validate
// before anything is asked of the cluster, and do the work in Run.
type Verb interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// RunE is the cobra RunE of v: Complete, Validate, then Run with the
// command's context.
func RunE(v Verb) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := v.Complete(cmd, args); err != nil {
			return err
		}
		if err := v.Validate(); err != nil {
			return err
		}
		return v.Run(cmd.Context())
	}
}
