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
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// RestoreOptions for `kubectl dr pg restore`.
type RestoreOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source    string
	To        string
	Latest    bool
	TargetDir string
	Node      string
	Verify    bool

	req *agentv1.RestorePostgresRequest
}

// NewCmdRestore returns `kubectl dr pg restore`.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore SOURCE --to TIME|--latest --target-dir DIR [--node N] [--verify]",
		Short: "Restore a database to a point in time, into a new directory",
		Long: `Lays down, in DIR on the node (by default the one that ships SOURCE), the newest
base backup that finished before TIME, its backup_label, and the recovery
settings: restore_command fetching WAL from the store through dr-agent wal
fetch (checksums checked), recovery_target_time, recovery.signal, and
archive_mode off (a restored copy must not archive into the source's spool).
DIR must be new or empty: nothing is overwritten. It prints how to start it;
with --verify it starts a scratch instance on DIR (no TCP), waits for
recovery to reach TIME and promote, and reports the last replayed
transaction's time and each table's row count.`,
		Example: `  kubectl dr pg restore pg-main --to 2026-11-21T10:15:00Z --target-dir /var/lib/restore/pg --verify
  kubectl dr pg restore pg-main --latest --target-dir /var/lib/restore/pg --node server-2`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("pg restore takes one SOURCE")
			}
			if (o.To == "") == !o.Latest {
				return cmdutil.UsageError("give exactly one of --to TIME and --latest")
			}
			if o.TargetDir == "" || !strings.HasPrefix(o.TargetDir, "/") {
				return cmdutil.UsageError("--target-dir: an absolute directory on the node is required")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.WALSourceNames(f)),
	}
	cmd.Flags().StringVar(&o.To, "to", "", "recovery target time (RFC 3339)")
	cmd.Flags().BoolVar(&o.Latest, "latest", false, "replay all archived WAL")
	cmd.Flags().StringVar(&o.TargetDir, "target-dir", "", "new directory on the node for the restored data directory")
	cmd.Flags().StringVar(&o.Node, "node", "", "restore on this node (default: the node that ships SOURCE)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	cmd.Flags().BoolVar(&o.Verify, "verify", false, "start a scratch instance on it and report what it recovered")
	return cmd
}

// Complete takes SOURCE.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	return nil
}

// Validate parses --to into the request.
func (o *RestoreOptions) Validate() error {
	o.req = &agentv1.RestorePostgresRequest{Source: o.Source, TargetDir: o.TargetDir, Verify: o.Verify}
	if o.Latest {
		o.req.Target = &agentv1.RestorePostgresRequest_Latest{Latest: true}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, o.To)
	if err != nil {
		return cmdutil.UsageError("--to %q: want an RFC 3339 time such as 2026-11-21T10:15:00Z: %v", o.To, err)
	}
	o.req.Target = &agentv1.RestorePostgresRequest_Time{Time: timestamppb.New(t)}
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
	out := o.Out
	fmt.Fprintf(out, "restored %s on %s into %s from base backup %s\n", o.Source, n.Node, res.TargetDir, res.BaseBackup)
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
