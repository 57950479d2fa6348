package agentclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// Node is one node's agent, dialled and asked for its Info. Err says why it
// could not be used; Conn is nil then.
type Node struct {
	Target
	Conn *Conn
	Info *agentv1.InfoResponse
	Err  error
	// Enrolled: the agent's certificate names this node. An agent not
	// enrolled serves the shared bootstrap certificate; it answers, but
	// gets no snapshot key.
	Enrolled bool
}

// Ready reports whether the agent answered.
func (n *Node) Ready() bool { return n.Err == nil && n.Conn != nil }

// IsEtcdLeader reports whether the node's etcd member leads the cluster.
func (n *Node) IsEtcdLeader() bool {
	return n.Ready() && n.Info.GetEtcd().GetMember() && n.Info.GetEtcd().GetLeader()
}

// IsEtcdMember reports whether the node runs an etcd member.
func (n *Node) IsEtcdMember() bool { return n.Ready() && n.Info.GetEtcd().GetMember() }

// IsSQLite reports whether the node is a k3s server on SQLite: its
// datastore is server/db/state.db served by kine, and it is the cluster's
// only server.
func (n *Node) IsSQLite() bool { return n.Ready() && n.Info.GetDatastore() == "sqlite" }

// HoldsDatastore reports whether the node keeps the cluster's datastore:
// an etcd member or a server on SQLite.
func (n *Node) HoldsDatastore() bool { return n.IsEtcdMember() || n.IsSQLite() }

// Nodes are the agents of a cluster.
type Nodes []*Node

// Close closes every connection.
func (ns Nodes) Close() {
	for _, n := range ns {
		if n.Conn != nil {
			n.Conn.Close()
		}
	}
}

// Find returns the node called name.
func (ns Nodes) Find(name string) (*Node, bool) {
	for _, n := range ns {
		if n.Node == name {
			return n, true
		}
	}
	return nil, false
}

// EtcdLeader returns the node whose member leads etcd, or the server on
// SQLite of a cluster without etcd.
func (ns Nodes) EtcdLeader() (*Node, error) {
	members := 0
	for _, n := range ns {
		if n.IsEtcdLeader() || n.IsSQLite() {
			return n, nil
		}
		if n.IsEtcdMember() {
			members++
		}
	}
	var down []string
	for _, n := range ns {
		if !n.Ready() {
			down = append(down, n.Node)
		}
	}
	unreachable := ""
	if len(down) > 0 {
		unreachable = fmt.Sprintf(" (agents not answering: %s)", strings.Join(down, ", "))
	}
	if members == 0 {
		return nil, fmt.Errorf("no agent on an etcd member answered%s: is the cluster's etcd down? use --node to pick a server", unreachable)
	}
	return nil, fmt.Errorf("none of the %d etcd members that answered leads etcd%s: use --node to pick one", members, unreachable)
}

// Server returns the named node, checked to run an etcd member, or the
// etcd leader's node when name is empty.
func (ns Nodes) Server(name string) (*Node, error) {
	if name == "" {
		return ns.EtcdLeader()
	}
	n, ok := ns.Find(name)
	if !ok {
		names := make([]string, len(ns))
		for i, n := range ns {
			names[i] = n.Node
		}
		known := strings.Join(names, ", ")
		if known == "" {
			known = "none"
		}
		return nil, fmt.Errorf("--node %s: no agent for that node (known: %s)", name, known)
	}
	if !n.Ready() {
		return nil, n.Err
	}
	if !n.HoldsDatastore() {
		return nil, fmt.Errorf("--node %s: the node runs no etcd member (it is not a k3s server with embedded etcd or SQLite); pick a server", name)
	}
	return n, nil
}

// Connect resolves the targets, dials each and asks its Info, in parallel.
// Nodes that fail carry the error; the caller closes the result.
func Connect(ctx context.Context, o Options) (Nodes, error) {
	targets, err := Resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	if o.TLS.IsZero() && o.ClusterTLS != nil && len(targets) > 0 {
		if files, err := o.ClusterTLS(ctx); err != nil {
			o.TLSHint = err.Error()
		} else {
			o.TLS = files
		}
	}
	var ca func(context.Context) (*pki.CA, error)
	if o.AgentCA != nil {
		var once sync.Once
		var key *pki.CA
		var err error
		ca = func(ctx context.Context) (*pki.CA, error) {
			once.Do(func() { key, err = o.AgentCA(ctx) })
			return key, err
		}
	}
	nodes := make(Nodes, len(targets))
	notes := make([]string, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], notes[i] = connect(ctx, t, o, ca)
		}()
	}
	wg.Wait()
	if o.Warnings != nil {
		for _, n := range notes {
			if n != "" {
				fmt.Fprintln(o.Warnings, n)
			}
		}
	}
	return nodes, nil
}

// connect dials t and asks its Info; an agent that answers with the
// bootstrap certificate is enrolled when ca can be read. note is what the
// user should hear about it.
func connect(ctx context.Context, t Target, o Options, ca func(context.Context) (*pki.CA, error)) (n *Node, note string) {
	n = &Node{Target: t}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	conn, err := Dial(ctx, t, o)
	if err != nil {
		n.Err = err
		return n, ""
	}
	info, err := conn.Info(ctx, &agentv1.InfoRequest{})
	if err != nil {
		conn.Close()
		var mismatch *pki.NodeMismatchError
		switch _, refused := conn.peer.state(); {
		case errors.As(refused, &mismatch):
			n.Err = refused
		case refused != nil:
			n.Err = fmt.Errorf("node %s: agent at %s: %w (check that --tls-ca/--tls-cert/--tls-key come from the same install as the agent)", t.Node, t.Via(), refused)
		default:
			n.Err = fmt.Errorf("node %s: agent at %s did not answer: %s", t.Node, t.Via(), Explain(err))
		}
		return n, ""
	}
	n.Conn, n.Info, n.Enrolled = conn, info, conn.Enrolled()
	if n.Enrolled {
		return n, ""
	}
	if err := enroll(ctx, n, o, ca); err != nil {
		return n, fmt.Sprintf("warning: node %s: the agent serves the shared bootstrap certificate, which does not prove its node, and could not be enrolled (%v): it gets no snapshot key until kubectl dr install, run by someone who can read Secret %s/%s, enrolls it", t.Node, err, namespace(o), AgentCASecret)
	}
	n.Enrolled = true
	return n, fmt.Sprintf("node %s: agent enrolled: it now serves a certificate for its node", t.Node)
}
