package snapshot

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr etcd snapshot ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Output string
	Node   string
	All    bool
	k3s    k3sS3
}

// NewCmdList returns `kubectl dr etcd snapshot ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List etcd snapshots, newest first",
		Long: `Lists the cluster's etcd snapshots in the store, and local copies that are
not uploaded yet. When no agent answers (the cluster is down), reads the
store directly with --store and its credentials.

--all also lists k3s's own snapshots on every server (the files k3s
etcd-snapshot and its schedule keep in <data-dir>/server/db/snapshots/, read
by that server's agent), with origin k3s-local, and the ones k3s uploaded to
S3 (--etcd-s3), with origin k3s-s3: k3s's S3 settings come from the
--k3s-s3-* flags, else from k3s's Secret kube-system/` + K3sS3Secret + `.
kubectl dr etcd snapshot import NAME brings one into the catalog.`,
		Example: `  kubectl dr etcd snapshot ls
  kubectl dr etcd snapshot ls --all
  # cluster down: read the store directly
  kubectl dr etcd snapshot ls --store s3://backups/k3s --s3-endpoint https://minio:9000 --cluster-id UID`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.Node, "node", "", "only snapshots taken on this node")
	cmd.Flags().BoolVar(&o.All, "all", false, "also list k3s's own snapshots: on every server (origin k3s-local) and in its S3 (origin k3s-s3)")
	o.k3s.addFlags(cmd.Flags())
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete has nothing to resolve.
func (o *ListOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate checks -o.
func (o *ListOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run lists the catalog.
func (o *ListOptions) Run(ctx context.Context) error {
	nodes, connErr := connect(ctx, o.f)
	defer nodes.Close()
	all, err := catalog(ctx, o.f, nodes, connErr, o.ErrOut)
	if err != nil {
		return err
	}
	if o.All {
		local := k3sLocal(ctx, nodes, all, o.ErrOut)
		s3, err := o.k3s.open(ctx, o.f)
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
		} else if s3 != nil {
			remote, err := listK3sS3(ctx, s3)
			if err != nil {
				fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
			}
			all = append(all, unseen(remote, all)...)
		}
		all = append(all, local...)
		dbsnap.SortNewestFirst(all)
	}
	list := printers.NewEtcdSnapshotList()
	for _, s := range all {
		if o.Node == "" || s.Node == o.Node {
			list.Items = append(list.Items, printers.NewEtcdSnapshot(s))
		}
	}
	if len(list.Items) == 0 && o.Output != printers.JSON && o.Output != printers.YAML {
		fmt.Fprintln(o.ErrOut, "No etcd snapshots found.")
		return nil
	}
	return printers.Print(o.Out, o.Output, list)
}

// unseen are the k3s snapshots of list that known does not hold already
// (imported ones keep k3s's name as their original name).
func unseen(list, known []*dbsnap.Snapshot) []*dbsnap.Snapshot {
	seen := map[string]bool{}
	for _, s := range known {
		seen[s.Name] = true
		if s.Imported != nil {
			seen[s.Imported.OriginalName] = true
		}
	}
	var out []*dbsnap.Snapshot
	for _, s := range list {
		if !seen[s.Name] {
			out = append(out, s)
		}
	}
	return out
}

// k3sLocal lists k3s's own snapshots on every server that answers, but
// the names already in known (kubectl dr's own copies share the directory
// and the naming; imported ones are listed as imported).
func k3sLocal(ctx context.Context, nodes agentclient.Nodes, known []*dbsnap.Snapshot, errOut io.Writer) []*dbsnap.Snapshot {
	seen := map[string]bool{}
	for _, s := range known {
		seen[s.Node+"/"+s.Name] = true
		if s.Imported != nil {
			// An imported k3s snapshot is listed once, as imported.
			seen[s.Node+"/"+s.Imported.OriginalName] = true
		}
	}
	var out []*dbsnap.Snapshot
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		resp, err := n.Conn.K3sSnapshots().ListK3SSnapshots(ctx, &agentv1.ListK3SSnapshotsRequest{})
		if err != nil {
			fmt.Fprintf(errOut, "warning: node %s: cannot list k3s's snapshots: %s\n", n.Node, agentclient.Explain(err))
			continue
		}
		for _, f := range resp.Snapshots {
			if seen[f.Node+"/"+f.Name] {
				continue
			}
			out = append(out, &dbsnap.Snapshot{
				Name: f.Name, Node: f.Node, Created: f.Modified.AsTime(), Size: f.SizeBytes,
				LocalPath: f.Path, Origin: dbsnap.OriginK3sLocal,
				Imported: &dbsnap.Imported{OriginalName: f.Name},
			})
		}
	}
	return out
}
