package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Exit codes, as documented in the README.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitPartial     = 3
	ExitInterrupted = 130
)

// ErrInterrupted is reported for a command that was interrupted but
// returned no error of its own.
var ErrInterrupted = fmt.Errorf("interrupted: %w", context.Canceled)

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

// ExitCode is the exit code of a command that ran under ctx and returned
// err. Once ctx is cancelled (Ctrl-C, SIGTERM) it is ExitInterrupted
// whatever the command returned: an agent call cut short comes back as a
// gRPC status or a message, not always as context.Canceled, and what ran
// after the interrupt is not what was asked for.
func ExitCode(ctx context.Context, err error) int {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ExitInterrupted
	}
	return Code(err)
}

// Report writes how cmd ended to errOut and returns the process's exit code
// (ExitCode). The error is printed as "error: MESSAGE", or, when cmd was
// run with -o json, as one JSON object on a line of its own, the same
// stream as the progress events:
//
//	{"type":"error","kind":"Error","apiVersion":"dr.kubectl.io/v1","error":"MESSAGE","exitCode":N}
func Report(ctx context.Context, errOut io.Writer, cmd *cobra.Command, err error) int {
	code := ExitCode(ctx, err)
	if code == ExitOK {
		return code
	}
	if err == nil {
		err = ErrInterrupted
	}
	if outputFormat(cmd) == printers.JSON {
		printers.PrintError(errOut, err, code)
		return code
	}
	fmt.Fprintln(errOut, "error:", err)
	return code
}

// outputFormat is the -o the command was given, "" for commands without.
func outputFormat(cmd *cobra.Command) string {
	if cmd == nil {
		return ""
	}
	if f := cmd.Flags().Lookup("output"); f != nil {
		return f.Value.String()
	}
	return ""
}

// NoArgs is cobra.NoArgs with the usage exit code.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageError("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}

// ValidateOutput is printers.ValidateOutput as a usage error.
func ValidateOutput(format string) error {
	if err := printers.ValidateOutput(format); err != nil {
		return UsageError("%w", err)
	}
	return nil
}
