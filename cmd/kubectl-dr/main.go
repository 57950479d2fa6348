// Command kubectl-dr is the kubectl dr plugin. Exit codes: 0 ok, 1 failure,
// 2 usage, 3 partial (some nodes failed), 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cmd.NewRootCmd(streams).ExecuteContext(ctx)
	if err == nil {
		return
	}
	code := cmdutil.Code(err)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		code = cmdutil.ExitInterrupted
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(code)
}
