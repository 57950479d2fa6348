package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

func main() {
	utilruntime.ErrorHandlers = agentclient.QuietPortForward(utilruntime.ErrorHandlers)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := cmd.Execute(ctx, cmdutil.NewFactory(streams.ErrOut), streams, os.Args[1:])
	stop()
	os.Exit(code)
}
