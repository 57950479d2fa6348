package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// RestoreOptions for `kubectl dr pg restore`.
type RestoreOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source     string
	To         string
	ToLSN      string
	ToXID      string
	ToName     string
	Immediate  bool
	Latest     bool
	Timeline   string
	Exclusive  bool
	BaseBackup string
	TargetDir  string
	Node       string
	Verify     bool
	DryRun     bool
	// AllowUnsigned restores from a base backup whose record carries no
	// signature.
	AllowUnsigned bool
	Output        string

	req *agentv1.RestorePostgresRequest
}

// NewCmdRestore returns `kubectl dr pg restore`.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore SOURCE --to TIME|--to-lsn LSN|--to-xid XID|--to-name NAME|--immediate|--latest --target-dir DIR [--timeline N|latest|current] [--exclusive] [--dry-run]",
		Short: "Restore a database to a point in time, into a new directory",
		Long: `Lays down, in DIR on the node (by default the one that ships SOURCE), the base
backup that reaches the target, its backup_label, and the recovery settings:
restore_command fetching WAL from the store through dr-agent wal fetch
(checksums checked), the recovery target, recovery.signal, and archive_mode
off (a restored copy must not archive into the source's spool).

The target is one of: --to TIME (the first commit after it), --to-lsn LSN,
--to-xid XID (that transaction's commit), --to-name NAME (a restore point
made with pg_create_restore_point), --immediate (the base backup's end) or
--latest (all archived WAL). --exclusive stops just before a time, LSN or
xid instead of just after. The base backup is the newest that can reach the
target along the timeline (--timeline, default the newest in the archive,
following its history file); --base-backup ID picks one. When WAL the target
needs is missing from the store the restore is refused before anything is
written; --dry-run prints the plan (base backup, WAL per timeline, replay
size, whether every segment is present) and exits 1 when one is missing.

DIR must be new or empty: nothing is overwritten. It prints how to start it;
with --verify it starts a scratch instance on DIR (no TCP), waits for
recovery to reach the target and promote, and reports the last replayed
transaction's time and each table's row count.`,
		Example: `  kubectl dr pg restore pg-main --to 2026-11-21T10:15:00Z --target-dir /var/lib/restore/pg --verify
  kubectl dr pg restore pg-main --to-name before-migration --target-dir /var/lib/restore/pg --verify
  kubectl dr pg restore pg-main --to-lsn 0/3000060 --dry-run
  kubectl dr pg restore pg-main --latest --target-dir /var/lib/restore/pg --node server-2`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("pg restore takes one SOURCE")
			}
			n := 0
			for _, set := range []bool{o.To != "", o.ToLSN != "", o.ToXID != "", cmd.Flags().Changed("to-name"), o.Immediate, o.Latest} {
				if set {
					n++
				}
			}
			if n != 1 {
				return cmdutil.UsageError("give exactly one of --to TIME, --to-lsn LSN, --to-xid XID, --to-name NAME, --immediate and --latest")
			}
			if !o.DryRun && (o.TargetDir == "" || !strings.HasPrefix(o.TargetDir, "/")) {
				return cmdutil.UsageError("--target-dir: an absolute directory on the node is required")
			}
			if o.TargetDir != "" && !strings.HasPrefix(o.TargetDir, "/") {
				return cmdutil.UsageError("--target-dir %q: an absolute directory on the node is required", o.TargetDir)
			}
			if o.DryRun && o.Verify {
				return cmdutil.UsageError("--dry-run restores nothing to verify: give one of --dry-run and --verify")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.WALSourceNames(f)),
	}
	cmd.Flags().StringVar(&o.To, "to", "", "recovery target time (RFC 3339)")
	cmd.Flags().StringVar(&o.ToLSN, "to-lsn", "", "recovery target WAL position X/Y (pg_current_wal_lsn())")
	cmd.Flags().StringVar(&o.ToXID, "to-xid", "", "recovery target transaction id (txid_current())")
	cmd.Flags().StringVar(&o.ToName, "to-name", "", "recovery target restore point (pg_create_restore_point)")
	cmd.Flags().BoolVar(&o.Immediate, "immediate", false, "stop as soon as the base backup is consistent (its end)")
	cmd.Flags().BoolVar(&o.Latest, "latest", false, "replay all archived WAL")
	cmd.Flags().StringVar(&o.Timeline, "timeline", "latest", "timeline to recover along: latest, current (the base backup's) or a number")
	cmd.Flags().BoolVar(&o.Exclusive, "exclusive", false, "stop just before the target (time, LSN, xid) instead of just after")
	cmd.Flags().StringVar(&o.BaseBackup, "base-backup", "", "restore this base backup (pg ls lists them) instead of the newest that reaches the target")
	cmd.Flags().StringVar(&o.TargetDir, "target-dir", "", "new directory on the node for the restored data directory")
	cmd.Flags().StringVar(&o.Node, "node", "", "restore on this node (default: the node that ships SOURCE)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	cmd.Flags().BoolVar(&o.Verify, "verify", false, "start a scratch instance on it and report what it recovered")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "only print the plan: base backup, WAL per timeline, what is missing")
	cmd.Flags().BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage)
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	return nil
}

// Validate parses the target into the request.
func (o *RestoreOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	o.req = &agentv1.RestorePostgresRequest{Source: o.Source, TargetDir: o.TargetDir, Verify: o.Verify, DryRun: o.DryRun,
		Timeline: o.Timeline, Exclusive: o.Exclusive, BaseBackup: o.BaseBackup, AllowUnsigned: o.AllowUnsigned}
	t := pgtarget.Target{Timeline: o.Timeline, Exclusive: o.Exclusive}
	switch {
	case o.Latest:
		o.req.Target = &agentv1.RestorePostgresRequest_Latest{Latest: true}
	case o.Immediate:
		o.req.Target, t.Kind = &agentv1.RestorePostgresRequest_Immediate{Immediate: true}, pgtarget.Immediate
	case o.ToLSN != "":
		if _, err := pgtarget.ParseLSN(o.ToLSN); err != nil {
			return cmdutil.UsageError("--to-lsn: %v", err)
		}
		o.req.Target, t.Kind = &agentv1.RestorePostgresRequest_Lsn{Lsn: strings.ToUpper(o.ToLSN)}, pgtarget.AtLSN
	case o.ToXID != "":
		x, err := pgtarget.ParseXID(o.ToXID)
		if err != nil {
			return cmdutil.UsageError("--to-xid: %v", err)
		}
		o.req.Target, t.Kind = &agentv1.RestorePostgresRequest_Xid{Xid: x}, pgtarget.XID
	case o.To == "":
		if err := pgtarget.ValidName(o.ToName); err != nil {
			return cmdutil.UsageError("--to-name: %v", err)
		}
		o.req.Target, t.Kind, t.Name = &agentv1.RestorePostgresRequest_Name{Name: o.ToName}, pgtarget.Name, o.ToName
	default:
		at, err := time.Parse(time.RFC3339Nano, o.To)
		if err != nil {
			return cmdutil.UsageError("--to %q: want an RFC 3339 time such as 2026-11-21T10:15:00Z: %v", o.To, err)
		}
		o.req.Target, t.Kind = &agentv1.RestorePostgresRequest_Time{Time: timestamppb.New(at)}, pgtarget.Time
	}
	if err := pgtarget.ValidTimeline(o.Timeline); err != nil {
		return cmdutil.UsageError("--timeline: %v", err)
	}
	if o.Exclusive && t.Kind != pgtarget.Time && t.Kind != pgtarget.AtLSN && t.Kind != pgtarget.XID {
		return cmdutil.UsageError("--exclusive applies to --to, --to-lsn and --to-xid only")
	}
	return nil
}

// Run restores on the chosen node and prints how to start the copy, or,
// with --verify, what it recovered.
func (o *RestoreOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	var n *agentclient.Node
	if o.Node != "" {
		var ok bool
		if n, ok = nodes.Find(o.Node); !ok || !n.Ready() {
			return fmt.Errorf("--node %s: no agent answers for it", o.Node)
		}
	} else if n, err = sourceNode(ctx, nodes, o.Source); err != nil {
		return err
	}
	stream, err := n.Conn.RestorePostgres(ctx, o.req)
	if err != nil {
		return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
	}
	progress := printers.NewNodeProgress(o.ErrOut, "")
	var res *agentv1.RestorePostgresResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			progress.Done()
			if res != nil && agentclient.IsEOF(err) {
				break
			}
			if status.Code(err) == codes.Unimplemented {
				return fmt.Errorf("node %s: its agent cannot restore PostgreSQL (upgrade it)", n.Node)
			}
			return fmt.Errorf("restore on %s: %s", n.Node, agentclient.Explain(err))
		}
		if p := msg.GetProgress(); p != nil {
			progress.Update(n.Node, printers.ProgressEvent{Phase: p.Phase, Message: p.Message, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Percent: p.Percent})
		}
		if r := msg.GetResult(); r != nil {
			res = r
		}
	}
	if o.DryRun {
		return o.printPlan(n.Node, res.Plan)
	}
	out := o.Out
	fmt.Fprintf(out, "restored %s on %s into %s from base backup %s\n", o.Source, n.Node, res.TargetDir, res.BaseBackup)
	if p := res.Plan; p != nil {
		fmt.Fprintf(out, "recovery to %s on timeline %d: %s\n", p.Target, p.Timeline, p.BaseBackupWhy)
		for _, note := range p.Notes {
			fmt.Fprintln(o.ErrOut, "note:", note)
		}
	}
	if !o.Verify {
		fmt.Fprintf(out, "start it with: %s\n", res.StartCommand)
		return nil
	}
	if res.RecoveredTo != nil {
		fmt.Fprintf(out, "recovered to %s (last replayed transaction)\n", res.RecoveredTo.AsTime().UTC().Format(time.RFC3339Nano))
	}
	tables := make([]string, 0, len(res.RowCounts))
	for t := range res.RowCounts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		fmt.Fprintf(out, "%s\t%d rows\n", t, res.RowCounts[t])
	}
	return nil
}

// printPlan prints a dry run's plan; a plan that cannot reach its target
// is an error (exit 1) after it is printed.
func (o *RestoreOptions) printPlan(node string, p *agentv1.PostgresRestorePlan) error {
	if p == nil {
		return fmt.Errorf("node %s: its agent cannot plan a PostgreSQL restore (upgrade it)", node)
	}
	view := printers.NewPGRestorePlan()
	view.Source, view.Node, view.TargetDir, view.Target = o.Source, node, o.TargetDir, p.Target
	view.BaseBackup, view.BaseBackupWhy, view.BaseBackupStartLSN, view.BaseBackupStopLSN = p.BaseBackup, p.BaseBackupWhy, p.BaseBackupStartLsn, p.BaseBackupStopLsn
	view.BaseBackupStopTime = p.BaseBackupStopTime.AsTime()
	view.Timeline, view.TimelineSetting = p.Timeline, p.TimelineSetting
	view.Segments, view.ReplayBytes, view.FetchBytes = p.Segments, p.ReplayBytes, p.FetchBytes
	view.Missing, view.Blocking, view.Open, view.Notes = p.Missing, p.Blocking, p.Open, p.Notes
	view.Settings = append(view.Settings, p.Settings...)
	for _, s := range p.Steps {
		view.Steps = append(view.Steps, printers.PGReplayStep{Timeline: s.Timeline, BeginLSN: s.BeginLsn, EndLSN: s.EndLsn, FirstSegment: s.FirstSegment, LastSegment: s.LastSegment, Segments: s.Segments})
	}
	var err error
	if o.Output == printers.JSON || o.Output == printers.YAML {
		err = printers.Print(o.Out, o.Output, view)
	} else {
		err = view.PrintText(o.Out)
	}
	if err != nil {
		return err
	}
	if p.Blocking {
		return fmt.Errorf("the restore would be refused: %s missing from the store between base backup %s and the target", strings.Join(p.Missing, ", "), p.BaseBackup)
	}
	return nil
}
