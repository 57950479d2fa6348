package status

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Options for `kubectl dr status`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Nodes  []string
	Output string

	agents agentclient.Options
}

// NewCmdStatus returns the status command.
func NewCmdStatus(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "status [--node NODE]...",
		Short: "Show each node's agent, roles and etcd health",
		Example: `  # every node, through the API server
  kubectl dr status

  # two agents reached directly, as JSON
  kubectl dr status --agent server-1=10.0.0.1:9650 --agent server-2=10.0.0.2:9650 -o json`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringArrayVar(&o.Nodes, "node", nil, "only this node (repeatable)")
	cmd.RegisterFlagCompletionFunc("node", cmdutil.CompleteFlag(cmdutil.NodeNames(f)))
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete resolves flags and environment.
func (o *Options) Complete(*cobra.Command, []string) error {
	o.agents = o.f.AgentOptions(o.Nodes)
	return nil
}

// Validate checks the flags before anything is dialled.
func (o *Options) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if _, err := agentclient.ParseAgents(o.agents.Agents); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	return nil
}

// Run asks every agent in parallel and prints one row per node. Nodes that
// could not be asked get an error line on stderr and exit code 3.
func (o *Options) Run(ctx context.Context) error {
	nodes, err := agentclient.Connect(ctx, o.agents)
	if err != nil {
		return err
	}
	defer nodes.Close()
	if len(nodes) == 0 {
		return fmt.Errorf("no dr-agent pods found in namespace %s: install the agents with `kubectl dr install`, or pass --agent NODE=HOST:PORT", o.agents.Namespace)
	}
	list := printers.NewAgentStatusList()
	var failed []string
	for _, n := range nodes {
		list.Items = append(list.Items, view(n))
		if !n.Ready() {
			failed = append(failed, n.Node)
			fmt.Fprintf(o.ErrOut, "error: %v\n", n.Err)
		} else {
			if n.IsEtcdMember() && n.Info.SnapshotEncryption == "" {
				fmt.Fprintf(o.ErrOut, "warning: %s uploads etcd snapshots unencrypted (they hold every Secret): configure a snapshot key\n", n.Node)
			}
			if v, mine := n.Info.AgentVersion, buildinfo.Get().Version; v != mine {
				fmt.Fprintf(o.ErrOut, "warning: %s runs dr-agent %s, this kubectl-dr is %s: run `kubectl dr install` with this kubectl-dr to upgrade the agents to it\n", n.Node, v, mine)
			}
		}
	}
	if err := printers.Print(o.Out, o.Output, list); err != nil {
		return err
	}
	if len(failed) > 0 {
		return cmdutil.Partial("%d of %d nodes could not be reached: %s", len(failed), len(list.Items), strings.Join(failed, ", "))
	}
	return nil
}

func view(n *agentclient.Node) printers.AgentStatus {
	s := printers.AgentStatus{Node: n.Node, Via: n.Via()}
	if !n.Ready() {
		s.Error = n.Err.Error()
		return s
	}
	info := n.Info
	s.Reachable = true
	if info.NodeName != n.Node {
		s.Error = fmt.Sprintf("agent reports node name %q", info.NodeName)
	}
	s.AgentVersion = info.AgentVersion
	s.ResticVersion = info.ResticVersion
	s.DataDir = info.DataDir
	s.ClusterID = info.ClusterId
	s.Store = info.Store
	s.SnapshotEncryption = info.SnapshotEncryption
	if s.SnapshotEncryption == "" && info.Etcd.GetMember() {
		s.SnapshotEncryption = "none"
	}
	for _, r := range info.Roles {
		s.Roles = append(s.Roles, roleName(r))
	}
	if e := info.Etcd; e != nil && e.Member {
		s.Etcd = &printers.EtcdHealth{
			Healthy: e.Healthy, Leader: e.Leader, MemberID: e.MemberId, Name: e.MemberName,
			Endpoint: e.Endpoint, Version: e.Version, DBSize: e.DbSizeBytes, Revision: e.Revision,
			ClusterID: e.ClusterId, Error: e.Error,
		}
	}
	return s
}

func roleName(r agentv1.NodeRole) string {
	switch r {
	case agentv1.NodeRole_NODE_ROLE_SERVER:
		return "server"
	case agentv1.NodeRole_NODE_ROLE_ETCD:
		return "etcd"
	case agentv1.NodeRole_NODE_ROLE_AGENT:
		return "agent"
	}
	return strings.ToLower(r.String())
}
