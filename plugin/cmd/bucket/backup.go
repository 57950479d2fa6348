package bucket

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// BackupOptions for `kubectl dr bucket backup`.
type BackupOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	Output string
}

// NewCmdBackup returns `kubectl dr bucket backup`.
func NewCmdBackup(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "backup SOURCE",
		Short: "Run a pass of a bucket source now, on the etcd leader's agent",
		Long: `Asks the agent on the etcd leader's node (the one that runs bucket passes)
for a pass of SOURCE now: new and changed objects are copied into the store,
deletions recorded. Waits for a pass already running first. When it returns,
the bucket as it was at the pass's start can be restored.`,
		Example: `  kubectl dr bucket backup app-media`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("bucket backup takes one SOURCE")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE.
func (o *BackupOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	return nil
}

// Validate checks SOURCE and -o.
func (o *BackupOptions) Validate() error {
	if err := bucketobj.ValidSource(o.Source); err != nil {
		return cmdutil.UsageError("%v", err)
	}
	return cmdutil.ValidateOutput(o.Output)
}

// Run asks the leader's agent for a pass and prints it.
func (o *BackupOptions) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	leader, err := nodes.EtcdLeader()
	if err != nil {
		return fmt.Errorf("bucket passes run on the etcd leader's agent: %w", err)
	}
	stream, err := leader.Conn.Buckets().BackupBucket(ctx, &agentv1.BackupBucketRequest{Source: o.Source})
	if err != nil {
		return fmt.Errorf("bucket backup %s on %s: %w", o.Source, leader.Node, err)
	}
	var res *agentv1.BucketPassResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if res != nil {
				break
			}
			return fmt.Errorf("bucket backup %s on %s: %w", o.Source, leader.Node, err)
		}
		if msg.Result != nil {
			res = msg.Result
		}
	}
	p := printers.NewBucketPass()
	p.Source, p.Node, p.Pass, p.Resumed = res.Source, leader.Node, res.Pass.AsTime(), res.Resumed
	p.Listed, p.Unchanged, p.Copied, p.Deleted = res.Listed, res.Unchanged, res.Copied, res.Deleted
	p.BytesRead, p.BytesUploaded, p.DurationMs = res.BytesRead, res.BytesUploaded, res.DurationMs
	return printers.Print(o.Out, o.Output, p)
}
