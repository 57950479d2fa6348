package prune

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd/snapshot"
)

// checkAge is how old a store check's probe object must be to go: a live
// agent rewrites its own at every check.
const checkAge = time.Hour

// Options for `kubectl dr prune`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	DryRun bool
	Files  bool
}

// NewCmdPrune returns `kubectl dr prune`.
func NewCmdPrune(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f, Files: true}
	cmd := &cobra.Command{
		Use:   "prune [--dry-run] [--files=false]",
		Short: "Apply the retention that deletes from the store, with the install's delete-capable credentials",
		Long: `Nodes installed with scoped store credentials (put and get, no delete) leave
every deletion to this command, which runs it with Secret dr-store:

  - etcd: the configured retention of scheduled snapshots, removed from the
    store from here (as kubectl dr etcd snapshot prune), local copies by
    each server;
  - files: each node's restic retention (restic forget and prune), run by
    the node with the delete-capable credentials sent for that request
    only (kept in memory, never written); --files=false skips it;
  - the probe objects the agents' store checks leave (.dr-check/, older
    than an hour).

An object under Object Lock is kept until its date and listed as kept.
PostgreSQL base backups: kubectl dr pg prune SOURCE.`,
		Example: `  kubectl dr prune --dry-run
  kubectl dr prune`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "only print what would be removed")
	cmd.Flags().BoolVar(&o.Files, "files", o.Files, "apply the nodes' file retention too (sends them the delete-capable credentials for the request)")
	return cmd
}

// Complete has nothing to resolve.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check.
func (o *Options) Validate() error { return nil }

// Run prunes etcd snapshots, file snapshots and check objects.
func (o *Options) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	verb := "removed"
	if o.DryRun {
		verb = "would remove"
	}
	var failed []string
	res, err := snapshot.Prune(ctx, o.f, nodes, o.DryRun, o.ErrOut)
	if err != nil {
		failed = append(failed, "etcd: "+err.Error())
	}
	for _, r := range res.Removed {
		fmt.Fprintf(o.Out, "etcd snapshot %s: %s\n", r, verb)
	}
	for _, d := range res.Deferred {
		fmt.Fprintf(o.Out, "etcd snapshot %s (kept)\n", d)
	}
	if o.Files {
		if err := o.files(ctx, nodes, verb); err != nil {
			failed = append(failed, "files: "+err.Error())
		}
	}
	if err := o.checks(ctx, verb); err != nil {
		failed = append(failed, "store checks: "+err.Error())
	}
	if len(failed) > 0 {
		return fmt.Errorf("prune: %s", strings.Join(failed, "; "))
	}
	return nil
}

// files has each node with file backups apply its restic retention.
func (o *Options) files(ctx context.Context, nodes agentclient.Nodes, verb string) error {
	if o.DryRun {
		fmt.Fprintln(o.ErrOut, "files: restic retention has no dry run here; kubectl dr backup list shows the snapshots")
		return nil
	}
	creds, err := cmdutil.DeleteCredentials(ctx, o.f)
	if err != nil {
		return err
	}
	var errs []string
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		removed, err := forget(ctx, n, creds)
		switch {
		case status.Code(err) == codes.FailedPrecondition:
			continue // file backups are off there
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %s", n.Node, agentclient.Explain(err)))
			continue
		}
		for _, id := range removed {
			fmt.Fprintf(o.Out, "file snapshot %s of %s: %s\n", shortID(id), n.Node, verb)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func forget(ctx context.Context, n *agentclient.Node, creds *agentv1.StoreCredentials) ([]string, error) {
	stream, err := n.Conn.ForgetFileSnapshots(ctx, &agentv1.ForgetFileSnapshotsRequest{Prune: true, StoreCredentials: creds})
	if err != nil {
		return nil, err
	}
	var res *agentv1.ForgetResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if res != nil && agentclient.IsEOF(err) {
				return res.RemovedSnapshots, nil
			}
			return nil, err
		}
		if r := msg.GetResult(); r != nil {
			res = r
		}
	}
}

// checks removes the probe objects store checks with put/get-only
// credentials leave behind.
func (o *Options) checks(ctx context.Context, verb string) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	objs, err := store.List(ctx, objstore.CheckDir)
	if err != nil {
		return err
	}
	n := 0
	for _, obj := range objs {
		if time.Since(obj.Modified) < checkAge {
			continue
		}
		if !o.DryRun {
			if err := store.Delete(ctx, obj.Key); objstore.Refused(err) {
				continue
			} else if err != nil {
				return err
			}
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(o.ErrOut, "store checks: %s %d probe object(s) under %s\n", verb, n, objstore.CheckDir)
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
