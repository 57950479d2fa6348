package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// VerifyOptions for `kubectl dr backup verify`.
type VerifyOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name   string
	Subset string
}

// NewCmdVerify returns `kubectl dr backup verify`.
func NewCmdVerify(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "verify NAME [--read-data-subset 10%]",
		Short: "Check a backup set: restic check and the etcd snapshot's checksum",
		Long: `Runs restic check on the repository (with --read-data-subset, also reads that
part of the data back and checks it), checks that every restic snapshot the
set records is in the repository, and reads the set's etcd snapshot back from
the store to compare its sha256 with its metadata. Exit code 1 when anything
is wrong.`,
		Example: `  kubectl dr backup verify backup-20261121-101500
  kubectl dr backup verify before-upgrade --read-data-subset 10%`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("backup verify takes one NAME")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, cmdutil.BackupSetNames(f)),
	}
	cmd.Flags().StringVar(&o.Subset, "read-data-subset", "", `also read back this much of the data: "10%", "1/5" or a size such as "500M"`)
	return cmd
}

// Complete takes NAME.
func (o *VerifyOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	return nil
}

// Validate checks the name.
func (o *VerifyOptions) Validate() error {
	if err := backupset.ValidateID(o.Name); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	return nil
}

// Run has the first agent that can run restic verify the set.
func (o *VerifyOptions) Run(ctx context.Context) error {
	id := o.Name
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	if _, err := backupset.Read(ctx, store, id); err != nil {
		return err
	}
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	progress := printers.NewNodeProgress(o.ErrOut, "")
	var refusals []string
	for _, n := range readyNodes(nodes) {
		res, err := verifyOn(ctx, n, id, o.Subset, progress)
		if status.Code(err) == codes.FailedPrecondition {
			refusals = append(refusals, n.Node+": "+status.Convert(err).Message())
			continue
		}
		progress.Done()
		if err != nil {
			return fmt.Errorf("verify on %s: %s", n.Node, agentclient.Explain(err))
		}
		for _, c := range res.Checked {
			fmt.Fprintf(o.Out, "ok       %s\n", c)
		}
		for _, p := range res.Problems {
			fmt.Fprintf(o.Out, "PROBLEM  %s\n", p)
		}
		if !res.Ok {
			return fmt.Errorf("backup %s failed verification: %d problem(s)", id, len(res.Problems))
		}
		fmt.Fprintf(o.Out, "backup %s verified (on %s)\n", id, n.Node)
		return nil
	}
	if len(refusals) > 0 {
		return fmt.Errorf("no agent could verify %s: %s", id, strings.Join(refusals, "; "))
	}
	return errors.New("no agent answers: verify runs restic on a node")
}

func verifyOn(ctx context.Context, n *agentclient.Node, id, subset string, progress *printers.NodeProgress) (*agentv1.VerifyResult, error) {
	stream, err := n.Conn.VerifyBackup(ctx, &agentv1.VerifyBackupRequest{BackupSet: id, ReadDataSubset: subset})
	if err != nil {
		return nil, err
	}
	var res *agentv1.VerifyResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if res != nil && agentclient.IsEOF(err) {
				return res, nil
			}
			return nil, err
		}
		switch ev := msg.Event.(type) {
		case *agentv1.VerifyBackupResponse_Progress:
			progress.Update(n.Node, printers.ProgressEvent{Phase: ev.Progress.Phase, Message: ev.Progress.Message})
		case *agentv1.VerifyBackupResponse_Result:
			res = ev.Result
		}
	}
}
