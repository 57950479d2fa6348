package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr pg ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	Output string
}

// NewCmdList returns `kubectl dr pg ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls [SOURCE]",
		Aliases: []string{"list"},
		Short:   "List base backups, oldest first",
		Long: `Lists the base backups in the store (of SOURCE, or of every source): when
each finished, the WAL it spans and its size; then per source and timeline
the WAL the store holds (contiguous ranges, the gaps between them, where the
timeline branched from its parent) and the first recoverable point: the end
of the oldest base backup whose WAL is all in the store, the earliest a
restore can stop at. Any agent answers: the records are in the store, so the
database's node need not be up.`,
		Example: `  kubectl dr pg ls
  kubectl dr pg ls pg-main -o wide`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("pg ls takes at most one SOURCE")
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
func (o *ListOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Source = args[0]
	}
	return nil
}

// Validate checks -o.
func (o *ListOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run lists the base backups through the first agent that answers.
func (o *ListOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	list, err := listBaseBackups(ctx, nodes, o.Source, o.ErrOut)
	if err != nil {
		return err
	}
	view := printers.NewBaseBackupList()
	for _, b := range list {
		view.Items = append(view.Items, baseBackupView(b, ""))
	}
	table := o.Output == printers.Table || o.Output == printers.Wide
	if len(list) == 0 && table {
		return noBaseBackups(ctx, nodes, o.Source, o.ErrOut)
	}
	if view.WAL, err = listWAL(ctx, nodes, o.Source); err != nil {
		// The base backups are listed all the same.
		fmt.Fprintln(o.ErrOut, "warning:", err)
	}
	if err := printers.Print(o.Out, o.Output, view); err != nil {
		return err
	}
	if table {
		for _, line := range printers.FirstRecoverableLines(view.WAL) {
			fmt.Fprintln(o.Out, line)
		}
	}
	return nil
}

// listWAL asks the agents in turn what the store holds of the WAL.
func listWAL(ctx context.Context, nodes agentclient.Nodes, source string) ([]printers.PGWALSource, error) {
	var errs []error
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		resp, err := n.Conn.PGRecovery().ListPostgresWAL(ctx, &agentv1.ListPostgresWALRequest{Source: source})
		if status.Code(err) == codes.Unimplemented {
			errs = append(errs, fmt.Errorf("node %s: its agent cannot list WAL ranges (upgrade it)", n.Node))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err)))
			continue
		}
		return walViews(resp.Sources), nil
	}
	return nil, fmt.Errorf("no agent could list the WAL ranges: %w", errors.Join(errs...))
}

func walViews(sources []*agentv1.PostgresWALSource) []printers.PGWALSource {
	var out []printers.PGWALSource
	for _, s := range sources {
		v := printers.PGWALSource{Source: s.Source, SegmentSize: s.SegmentSize, Timelines: []printers.PGWALTimeline{}}
		if s.FirstRecoverableBaseBackup != "" {
			v.FirstRecoverable = &printers.PGRecoverablePoint{BaseBackup: s.FirstRecoverableBaseBackup, LSN: s.FirstRecoverableLsn, Time: s.FirstRecoverableTime.AsTime(), Timeline: s.FirstRecoverableTimeline}
		}
		for _, t := range s.Timelines {
			tv := printers.PGWALTimeline{Timeline: t.Timeline, Parent: t.Parent, SwitchLSN: t.SwitchLsn, HistoryMissing: t.HistoryMissing, PartialFiles: t.PartialFiles, Bytes: t.Bytes, Ranges: []printers.PGWALRange{}}
			for _, r := range t.Ranges {
				tv.Ranges = append(tv.Ranges, printers.PGWALRange{First: r.First, Last: r.Last, Segments: r.Segments, LastStored: r.LastStored.AsTime()})
			}
			for _, r := range t.Gaps {
				tv.Gaps = append(tv.Gaps, printers.PGWALRange{First: r.First, Last: r.Last, Segments: r.Segments})
			}
			v.Timelines = append(v.Timelines, tv)
		}
		out = append(out, v)
	}
	return out
}

// listBaseBackups asks the agents in turn until one answers.
func listBaseBackups(ctx context.Context, nodes agentclient.Nodes, source string, errOut io.Writer) ([]*agentv1.BaseBackupResult, error) {
	var errs []error
	for _, n := range nodes {
		if !n.Ready() {
			errs = append(errs, fmt.Errorf("node %s is not reachable: %v", n.Node, n.Err))
			continue
		}
		resp, err := n.Conn.ListBaseBackups(ctx, &agentv1.ListBaseBackupsRequest{Source: source})
		if err == nil {
			for _, sk := range resp.Skipped {
				fmt.Fprintln(errOut, "warning:", sk)
			}
			return resp.BaseBackups, nil
		}
		errs = append(errs, fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err)))
	}
	return nil, fmt.Errorf("no agent could list base backups: %w", errors.Join(errs...))
}

// noBaseBackups says so, and which sources do have some.
func noBaseBackups(ctx context.Context, nodes agentclient.Nodes, source string, errOut io.Writer) error {
	if source == "" {
		fmt.Fprintln(errOut, "No base backups in the store (kubectl dr pg basebackup SOURCE takes one).")
		return nil
	}
	var others []string
	if all, err := listBaseBackups(ctx, nodes, "", io.Discard); err == nil {
		for _, b := range all {
			if !slices.Contains(others, b.Source) {
				others = append(others, b.Source)
			}
		}
	}
	fmt.Fprintf(errOut, "No base backups of %s in the store (kubectl dr pg basebackup %s takes one).", source, source)
	if len(others) > 0 {
		fmt.Fprintf(errOut, " Sources with base backups: %s.", strings.Join(others, ", "))
	}
	fmt.Fprintln(errOut)
	return nil
}
