package status

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
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
	askLayers(ctx, nodes)
	list := printers.NewAgentStatusList()
	now := time.Now()
	list.Layers = layers(nodes, now)
	if d, ok := o.lastDrill(ctx, now); ok {
		list.Layers = append(list.Layers, d)
	}
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
	// A missed target is a failure (exit 1) and wins over unreachable
	// nodes (exit 3): what is missed needs acting on, whatever else
	// could not be asked.
	var missed []string
	for _, l := range list.Layers {
		if l.State == printers.LayerUnknown {
			fmt.Fprintf(o.ErrOut, "warning: %s %s: the newest point could not be read: %s\n", l.Node, l.Label(), l.Error)
		}
		if m := l.Missed(); m != "" {
			fmt.Fprintln(o.ErrOut, m)
			missed = append(missed, l.Node+" "+l.Label())
		}
	}
	if len(failed) > 0 && len(missed) > 0 {
		fmt.Fprintf(o.ErrOut, "error: %d of %d nodes could not be reached: %s\n", len(failed), len(list.Items), strings.Join(failed, ", "))
	}
	if len(missed) > 0 {
		return fmt.Errorf("%d recovery point target(s) missed: %s: take a backup now (kubectl dr backup create), then find why the scheduled run did not (the agent's log, LAST FAILURE with -o wide)", len(missed), strings.Join(missed, ", "))
	}
	if len(failed) > 0 {
		return cmdutil.Partial("%d of %d nodes could not be reached: %s", len(failed), len(list.Items), strings.Join(failed, ", "))
	}
	return nil
}

// lastDrill is the drills row: the newest drill report in the store,
// passed or failed, and its age. Status reads it only when the store can
// be opened; without one (or without drills) there is no row.
func (o *Options) lastDrill(ctx context.Context, now time.Time) (printers.LayerStatus, bool) {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return printers.LayerStatus{}, false
	}
	rctx, cancel := context.WithTimeout(ctx, agentclient.CallTimeout)
	defer cancel()
	reports, _, err := drillreport.List(rctx, store)
	v := printers.LayerStatus{Node: "cluster", Layer: "drills", State: printers.LayerOff}
	v.SetNow(now)
	switch {
	case err != nil:
		v.State, v.Error = printers.LayerUnknown, err.Error()
		return v, true
	case len(reports) == 0:
		return printers.LayerStatus{}, false
	}
	last := reports[0]
	v.State, v.NewestName = printers.DrillPassed, last.ID
	if !last.Passed {
		v.State = printers.DrillFailed
		t := metav1.NewTime(last.Started)
		v.LastFailure, v.LastFailureReason = &t, strings.Join(last.Reasons, "; ")
	}
	t := metav1.NewTime(last.Started)
	age := int64(now.Sub(last.Started) / time.Second)
	v.Newest, v.AgeSeconds = &t, &age
	return v, true
}

// askLayers asks every reachable agent again, with the layers this time
// (connecting asked only who they are); an agent that does not answer
// keeps its first answer and shows no layers.
func askLayers(ctx context.Context, nodes agentclient.Nodes) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := n.Conn.Info(ctx, &agentv1.InfoRequest{Layers: true})
			if err == nil {
				n.Info = info
			}
		}()
	}
	wg.Wait()
}

// layers are the layers' rows: every node's files and WAL sources, and the
// etcd layer once. etcd snapshots are the cluster's, taken by the leader's
// agent: the row is the leader's (the first member's when no leader
// answered), with the newest snapshot any member knows and the latest
// failure any member saw.
func layers(nodes agentclient.Nodes, now time.Time) []printers.LayerStatus {
	var out []printers.LayerStatus
	var etcd *printers.LayerStatus
	etcdAt := -1
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		for _, l := range n.Info.GetLayers() {
			v := layerView(n.Node, l, now)
			if l.Layer != "etcd" {
				out = append(out, v)
				continue
			}
			if etcd == nil {
				etcd, etcdAt = &v, len(out)
				out = append(out, v)
				continue
			}
			merged := *etcd
			if l.Leader {
				merged.Node, merged.RPOTargetSeconds, merged.NextRun, merged.Schedule, merged.Off = v.Node, v.RPOTargetSeconds, v.NextRun, v.Schedule, v.Off
			}
			if v.Newest != nil && (merged.Newest == nil || v.Newest.After(merged.Newest.Time)) {
				merged.Newest, merged.NewestName, merged.AgeSeconds = v.Newest, v.NewestName, v.AgeSeconds
			}
			if v.LastFailure != nil && (merged.LastFailure == nil || v.LastFailure.After(merged.LastFailure.Time)) {
				merged.LastFailure, merged.LastFailureReason = v.LastFailure, v.Node+": "+v.LastFailureReason
			}
			if merged.Newest != nil {
				merged.Error = ""
			}
			etcd = &merged
			merged.State = layerState(&merged)
			out[etcdAt] = merged
		}
	}
	return out
}

func layerView(node string, l *agentv1.LayerStatus, now time.Time) printers.LayerStatus {
	v := printers.LayerStatus{Node: node, Layer: l.Layer, Name: l.Name, Off: l.Off, NewestName: l.NewestName,
		RPOTargetSeconds: l.RpoTargetSeconds, LastFailureReason: l.LastFailureReason, Schedule: l.Schedule, Error: l.Error}
	v.SetNow(now)
	if l.Newest != nil {
		t := metav1.NewTime(l.Newest.AsTime())
		v.Newest = &t
		age := int64(now.Sub(t.Time) / time.Second)
		v.AgeSeconds = &age
	}
	if l.LastFailure != nil {
		t := metav1.NewTime(l.LastFailure.AsTime())
		v.LastFailure = &t
	}
	if l.NextRun != nil {
		t := metav1.NewTime(l.NextRun.AsTime())
		v.NextRun = &t
	}
	v.State = layerState(&v)
	return v
}

// layerState: off when the layer is off or has no target; unknown when
// the newest point could not be read; missed when there is none or it is
// older than the target.
func layerState(v *printers.LayerStatus) string {
	switch {
	case v.Off != "" || v.RPOTargetSeconds <= 0:
		return printers.LayerOff
	case v.Newest == nil && v.Error != "":
		return printers.LayerUnknown
	case v.AgeSeconds == nil || *v.AgeSeconds > v.RPOTargetSeconds:
		return printers.LayerMissed
	}
	return printers.LayerOK
}

func view(n *agentclient.Node) printers.AgentStatus {
	s := printers.AgentStatus{Node: n.Node, Via: n.Via()}
	if !n.Ready() {
		s.Error = n.Err.Error()
		return s
	}
	info := n.Info
	s.Reachable = true
	s.Certificate = printers.CertificateBootstrap
	if n.Enrolled {
		s.Certificate = printers.CertificateNode
	}
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
