// Package cmdutil holds what every verb of kubectl dr shares: the factory
// that turns flags into clients, output flags and the exit codes.
package cmdutil

import (
	"github.com/spf13/cobra"

	"errors"
	"fmt"
)

// Exit codes, as documented in the README.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitPartial     = 3
	ExitInterrupted = 130
)

// ExitError carries an exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Partial reports that some nodes failed; the others were reported.
func Partial(format string, a ...any) error {
	return &ExitError{Code: ExitPartial, Err: fmt.Errorf(format, a...)}
}

// UsageError reports bad flags or arguments.
func UsageError(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Code returns the exit code for err.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// NoArgs is cobra.NoArgs with the usage exit code.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageError("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
