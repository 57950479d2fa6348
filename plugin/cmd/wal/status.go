package wal

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// StatusOptions for `kubectl dr wal status`.
type StatusOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	Output string
}

// NewCmdStatus returns `kubectl dr wal status`.
func NewCmdStatus(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "status [SOURCE]",
		Short: "Per WAL source: newest archived segment and its age (the RPO), spool backlog, gaps",
		Long: `Asks every agent for its WAL sources: the newest segment in the store and how
long ago it was stored (the database's recovery point), the files still
waiting in the spool, the spool's free space (LOW before PostgreSQL's
archiving would fail), the last error, and segments missing from the store
(a gap stops point-in-time recovery there). Exit 1 when a source has gaps or
a low spool, 3 when some nodes could not be asked.`,
		Example: `  kubectl dr wal status
  kubectl dr wal status pg-main -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("wal status takes at most one SOURCE")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.WALSourceNames(f)),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE.
func (o *StatusOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Source = args[0]
	}
	return nil
}

// Validate checks -o.
func (o *StatusOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run asks every agent for its sources and prints one row per source.
func (o *StatusOptions) Run(ctx context.Context) error {
	source := o.Source
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	results := make([][]printers.WALSource, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ask(ctx, n, source)
		}()
	}
	wg.Wait()
	list := printers.NewWALSourceList()
	var unreachable, trouble []string
	for _, r := range results {
		for _, s := range r {
			switch {
			case s.Error != "":
				unreachable = append(unreachable, s.Node)
			case s.RefusedFiles > 0:
				trouble = append(trouble, fmt.Sprintf("%s on %s: %d file(s) refused, kept in the spool: %s", s.Source, s.Node, s.RefusedFiles, s.LastError))
			case len(s.Gaps) > 0:
				trouble = append(trouble, fmt.Sprintf("%s on %s: %d segment(s) missing from the store, first %s", s.Source, s.Node, len(s.Gaps), s.Gaps[0]))
			case s.SpoolLow:
				trouble = append(trouble, fmt.Sprintf("%s on %s: spool %s has only %s free", s.Source, s.Node, s.Spool, printers.HumanBytes(s.FreeBytes)))
			}
			list.Items = append(list.Items, s)
		}
	}
	if source != "" && len(list.Items) == len(unreachable) {
		return fmt.Errorf("no node ships a WAL source %q", source)
	}
	if len(list.Items) == 0 {
		fmt.Fprintln(o.ErrOut, "No WAL sources configured (wal.sources in the agent config).")
		return nil
	}
	if err := printers.Print(o.Out, o.Output, list); err != nil {
		return err
	}
	for _, t := range trouble {
		fmt.Fprintln(o.ErrOut, "warning:", t)
	}
	switch {
	case len(trouble) > 0:
		return fmt.Errorf("%d WAL source(s) need attention", len(trouble))
	case len(unreachable) > 0:
		return cmdutil.Partial("%d node(s) could not be asked: %s", len(unreachable), strings.Join(unreachable, ", "))
	}
	return nil
}

func ask(ctx context.Context, n *agentclient.Node, source string) []printers.WALSource {
	if !n.Ready() {
		return []printers.WALSource{{Node: n.Node, Error: n.Err.Error()}}
	}
	resp, err := n.Conn.WALStatus(ctx, &agentv1.WALStatusRequest{Source: source})
	if status.Code(err) == codes.NotFound {
		return nil // the source lives on another node
	}
	if err != nil {
		return []printers.WALSource{{Node: n.Node, Error: agentclient.Explain(err)}}
	}
	var out []printers.WALSource
	for _, s := range resp.Sources {
		v := printers.WALSource{
			Node: n.Node, Source: s.Name, Spool: s.SpoolDir, Newest: s.NewestSegment,
			BacklogFiles: s.BacklogFiles, BacklogBytes: s.BacklogBytes, FreeBytes: s.SpoolFreeBytes,
			SpoolLow: s.SpoolLow, Gaps: s.Gaps, LastError: s.LastError, RefusedFiles: s.RefusedFiles,
		}
		if s.NewestShipped != nil {
			t := s.NewestShipped.AsTime()
			rpo := time.Since(t).Seconds()
			v.NewestTime, v.RPOSeconds = &t, &rpo
		}
		out = append(out, v)
	}
	return out
}
