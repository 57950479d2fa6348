package agentclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// Defaults matching manifests/ and DESIGN.md.
const (
	DefaultNamespace = "dr-system"
	DefaultSelector  = "app.kubernetes.io/name=dr-agent"
	AgentPort        = 9650
	// ServerName is the DNS name of the bootstrap certificate every agent
	// shares until it is enrolled (pki.NodeDNSName names an enrolled one).
	ServerName = pki.BootstrapName
	// PortAnnotation on an agent pod names its gRPC port (default AgentPort).
	PortAnnotation = "dr.kubectl.io/grpc-port"
)

// ErrNoAgent means no agent is known for a node that was asked for.
var ErrNoAgent = errors.New("no agent found")

// Target is one node's agent: where it is and, when it cannot be used, why.
type Target struct {
	Node string
	// Address is set for agents given with --agent.
	Address string
	// Pod is set for agents found through the API server.
	Pod *corev1.Pod
	// Err says why the target cannot be dialled (pod not ready, unknown node).
	Err error
}

// Via describes how the agent is reached, for humans.
func (t Target) Via() string {
	switch {
	case t.Address != "":
		return "direct " + t.Address
	case t.Pod != nil:
		return "pod " + t.Pod.Namespace + "/" + t.Pod.Name
	}
	return ""
}

// Options configure how agents are found and dialled.
type Options struct {
	// Agents are NODE=HOST:PORT entries, dialled directly; they win over a
	// pod found for the same node.
	Agents []string
	// Discover lists agent pods through the API server. When direct agents
	// are given too, a failed discovery is only a warning.
	Discover  bool
	Namespace string
	Selector  string
	// Nodes restricts the result to these nodes; a node with no agent gets a
	// Target with ErrNoAgent.
	Nodes []string
	TLS   mtls.Files
	// TLSHint says why no client certificate was found in the cluster.
	TLSHint string
	// ClusterTLS reads the client certificate install keeps in the
	// cluster; Connect asks it only when TLS is empty and an agent is to
	// be dialled (so a dead API server costs nothing in direct mode with
	// certificates given).
	ClusterTLS func(ctx context.Context) (mtls.Files, error)
	// RESTConfig is needed for discovery and port-forwarding.
	RESTConfig func() (*rest.Config, error)
	// Warnings receives what did not stop the command.
	Warnings io.Writer
	// AgentCA reads install's CA to enroll an agent met with the
	// bootstrap certificate; nil, or an error, leaves it unenrolled (with
	// a warning).
	AgentCA AgentCAFunc
	// SnapshotKey is the snapshot key sent with every request that must
	// decrypt (nodes hold only its public recipient); nil sends none.
	SnapshotKey SnapshotKeyFunc
	// Dialer, when set, makes the connection to each address dialled (an
	// --agent address, or the local end of a port-forward) instead of TCP:
	// tests serve agents in-process over bufconn.
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

// ParseAgents parses NODE=HOST:PORT entries.
func ParseAgents(entries []string) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		node, addr, ok := strings.Cut(e, "=")
		if !ok || node == "" || addr == "" || !strings.Contains(addr, ":") {
			return nil, fmt.Errorf("--agent %q: want NODE=HOST:PORT", e)
		}
		if seen[node] {
			return nil, fmt.Errorf("--agent %q: node %s given twice", e, node)
		}
		seen[node] = true
		out = append(out, Target{Node: node, Address: addr})
	}
	return out, nil
}

// Resolve returns one Target per node, sorted by node name.
func Resolve(ctx context.Context, o Options) ([]Target, error) {
	targets, err := ParseAgents(o.Agents)
	if err != nil {
		return nil, err
	}
	if o.Discover {
		// Agents given directly are how a cluster whose API server is
		// down (mid-restore) is reached: the API gets a moment, not more.
		limit := 20 * time.Second
		if len(targets) > 0 {
			limit = 3 * time.Second
		}
		dctx, cancel := context.WithTimeout(ctx, limit)
		pods, err := discover(dctx, o)
		cancel()
		if err != nil && len(targets) == 0 {
			return nil, err
		}
		if err != nil && o.Warnings != nil {
			fmt.Fprintf(o.Warnings, "warning: agents given directly only; %v\n", err)
		}
		have := map[string]bool{}
		for _, t := range targets {
			have[t.Node] = true
		}
		for _, t := range pods {
			if !have[t.Node] {
				targets = append(targets, t)
			}
		}
	}
	if len(o.Nodes) > 0 {
		byNode := map[string]Target{}
		for _, t := range targets {
			byNode[t.Node] = t
		}
		targets = targets[:0]
		for _, n := range o.Nodes {
			t, ok := byNode[n]
			if !ok {
				t = Target{Node: n, Err: fmt.Errorf("node %s: %w (is the node name right, and does the dr-agent DaemonSet run there?)", n, ErrNoAgent)}
			}
			targets = append(targets, t)
		}
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].Node < targets[j].Node })
	return targets, nil
}

func discover(ctx context.Context, o Options) ([]Target, error) {
	if o.RESTConfig == nil {
		return nil, errors.New("find agent pods: no kubeconfig")
	}
	cfg, err := o.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("find agent pods: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("find agent pods: %w", err)
	}
	ns, sel := o.Namespace, o.Selector
	if ns == "" {
		ns = DefaultNamespace
	}
	if sel == "" {
		sel = DefaultSelector
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list agent pods in namespace %s (%s): %w (when the API server is down, reach the agents directly: --agent NODE=HOST:PORT or $KUBECTL_DR_AGENTS)", ns, sel, err)
	}
	// One target per node: during a rolling update a node has two pods;
	// the ready one wins.
	byNode := map[string]int{}
	var out []Target
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		node := p.Spec.NodeName
		if node == "" {
			node = "(unscheduled " + p.Name + ")"
		}
		t := Target{Node: node, Pod: p}
		if !podReady(p) {
			t.Err = fmt.Errorf("agent pod %s/%s on node %s is not ready (phase %s)", p.Namespace, p.Name, node, p.Status.Phase)
		}
		if j, ok := byNode[node]; ok {
			if out[j].Err != nil && t.Err == nil {
				out[j] = t
			}
			continue
		}
		byNode[node] = len(out)
		out = append(out, t)
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Conn is a gRPC connection to one agent.
type Conn struct {
	agentv1.AgentServiceClient
	// Barrier is the restore barrier's service (restorebarrier.proto).
	Barrier agentv1.RestoreBarrierServiceClient
	conn    *grpc.ClientConn
	cleanup func()
	peer    *peer
}

// Close ends the connection and any port-forward under it.
func (c *Conn) Close() error {
	err := c.conn.Close()
	if c.cleanup != nil {
		c.cleanup()
	}
	return err
}

// Dial connects to the target's agent with mTLS; for a pod it first opens a
// port-forward through the API server.
func Dial(ctx context.Context, t Target, o Options) (*Conn, error) {
	if t.Err != nil {
		return nil, t.Err
	}
	tlsCfg, err := mtls.ClientConfig(o.TLS, ServerName)
	if err != nil {
		hint := ""
		if o.TLSHint != "" {
			hint = "; from the cluster: " + o.TLSHint
		}
		return nil, fmt.Errorf("agent client TLS: %w (give --tls-ca/--tls-cert/--tls-key, set KUBECTL_DR_CA, KUBECTL_DR_CERT, KUBECTL_DR_KEY, or run kubectl dr install, which keeps one in Secret %s/dr-client-tls%s)", err, o.Namespace, hint)
	}
	addr, cleanup := t.Address, func() {}
	if t.Pod != nil {
		cfg, err := o.RESTConfig()
		if err != nil {
			return nil, err
		}
		port := AgentPort
		if v, ok := t.Pod.Annotations[PortAnnotation]; ok {
			if port, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("node %s: pod %s: annotation %s=%q is not a port", t.Node, t.Via(), PortAnnotation, v)
			}
		}
		addr, cleanup, err = portForward(ctx, cfg, t.Pod, port)
		if err != nil {
			return nil, fmt.Errorf("node %s: port-forward to %s: %w", t.Node, t.Via(), err)
		}
	}
	// The host name check gives way to peer.verify: the address is a
	// loopback port-forward or --agent's, and the certificate must name
	// the node, not the address.
	p := &peer{node: t.Node}
	tlsCfg.InsecureSkipVerify, tlsCfg.VerifyConnection = true, p.verify(tlsCfg.RootCAs)
	keys := keyFiller{load: o.SnapshotKey, peer: p}
	target, opts := addr, []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithChainUnaryInterceptor(keys.unary), grpc.WithChainStreamInterceptor(keys.stream)}
	if o.Dialer != nil {
		// passthrough: the address goes to the dialer as given, not to DNS.
		target, opts = "passthrough:///"+addr, append(opts, grpc.WithContextDialer(o.Dialer))
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("node %s: dial agent at %s: %w", t.Node, addr, err)
	}
	return &Conn{AgentServiceClient: agentv1.NewAgentServiceClient(cc), Barrier: agentv1.NewRestoreBarrierServiceClient(cc), conn: cc, cleanup: cleanup, peer: p}, nil
}

// CallTimeout bounds short calls (Info, status) so a hung agent is reported,
// not waited on.
const CallTimeout = 15 * time.Second

// Buckets is the agent's BucketService on the same connection.
func (c *Conn) Buckets() agentv1.BucketServiceClient { return agentv1.NewBucketServiceClient(c.conn) }

// Recover is the recovery service (recover.proto).
func (c *Conn) Recover() agentv1.RecoverServiceClient { return agentv1.NewRecoverServiceClient(c.conn) }

// Drills is the agent's DrillService on the same connection.
func (c *Conn) Drills() agentv1.DrillServiceClient { return agentv1.NewDrillServiceClient(c.conn) }

// K3sSnapshots is the service of k3s's own snapshots (k3ssnapshot.proto).
func (c *Conn) K3sSnapshots() agentv1.K3SSnapshotServiceClient {
	return agentv1.NewK3SSnapshotServiceClient(c.conn)
}

// PGRecovery is the PostgreSQL recovery service (pgrecovery.proto).
func (c *Conn) PGRecovery() agentv1.PostgresRecoveryServiceClient {
	return agentv1.NewPostgresRecoveryServiceClient(c.conn)
}
