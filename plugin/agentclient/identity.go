package agentclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// NodeCertValidity is how long an agent's node certificate lasts (capped
// by the CA's own life); install renews the CA, and the nodes are
// enrolled again, before it ends.
const NodeCertValidity = 5 * 365 * 24 * time.Hour

// AgentCASecret is the Secret install keeps its CA in (ca.crt, ca.key);
// the agents never mount it.
const AgentCASecret = "dr-agent-ca"

func namespace(o Options) string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// AgentCAFunc returns install's CA (Secret dr-agent-ca), which signs the
// agents' node certificates.
type AgentCAFunc func(ctx context.Context) (*pki.CA, error)

// peer is what the TLS handshake proved about the agent on a connection.
type peer struct {
	node string
	mu   sync.Mutex
	// shaken: a handshake ran; enrolled: the agent's certificate names
	// the node dialled.
	shaken, enrolled bool
	// refused is why the last handshake was refused.
	refused error
}

// verify is the connection's certificate check, in place of the host
// name check (the address dialled is a loopback port-forward or whatever
// --agent says, neither names the node): the chain must lead to the CA,
// and the certificate must name the node dialled or be the bootstrap one.
func (p *peer) verify(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		enrolled, err := pki.VerifyAgent(cs.PeerCertificates, roots, p.node, time.Now())
		p.mu.Lock()
		defer p.mu.Unlock()
		p.shaken, p.enrolled, p.refused = true, enrolled, err
		return err
	}
}

// proven waits for the connection's handshake when none ran yet (a
// request is about to carry the snapshot key) and reports whether the
// agent proved its node.
func (p *peer) proven(ctx context.Context, cc *grpc.ClientConn) bool {
	p.mu.Lock()
	shaken := p.shaken
	p.mu.Unlock()
	if !shaken {
		cc.Connect()
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if s == connectivity.TransientFailure || s == connectivity.Shutdown || !cc.WaitForStateChange(ctx, s) {
				break
			}
		}
	}
	enrolled, _ := p.state()
	return enrolled
}

func (p *peer) state() (enrolled bool, refused error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enrolled, p.refused
}

// Enrolled reports whether the agent proved, with a certificate from
// install's CA naming it, to be the node it was dialled as.
func (c *Conn) Enrolled() bool {
	enrolled, _ := c.peer.state()
	return enrolled
}

// Identity is the enrollment service (identity.proto).
func (c *Conn) Identity() agentv1.IdentityServiceClient {
	return agentv1.NewIdentityServiceClient(c.conn)
}

// Enroll signs node's agent certificate for the key the agent holds and
// has the agent install it. The certificate names the node dialled, never
// the name the agent reports.
func Enroll(ctx context.Context, c *Conn, node string, ca *pki.CA) error {
	r, err := c.Identity().GetNodeCertificateRequest(ctx, &agentv1.GetNodeCertificateRequestRequest{})
	if err != nil {
		return fmt.Errorf("node %s: ask the agent for its certificate request: %s", node, Explain(err))
	}
	certPEM, err := ca.SignNode(r.GetCsrDer(), node, NodeCertValidity)
	if err != nil {
		return err
	}
	if _, err := c.Identity().InstallNodeCertificate(ctx, &agentv1.InstallNodeCertificateRequest{CertificatePem: certPEM}); err != nil {
		return fmt.Errorf("node %s: the agent refused its certificate: %s", node, Explain(err))
	}
	return nil
}

// enroll enrolls the agent of n when the CA can be read, and dials it
// again to check it now serves its node's certificate. Without the CA it
// says why the node stays unenrolled.
func enroll(ctx context.Context, n *Node, o Options, ca func(context.Context) (*pki.CA, error)) error {
	if ca == nil {
		return errors.New("no CA to enroll it with")
	}
	key, err := ca(ctx)
	if err != nil {
		return err
	}
	if err := Enroll(ctx, n.Conn, n.Node, key); err != nil {
		return err
	}
	conn, err := Dial(ctx, n.Target, o)
	if err != nil {
		return err
	}
	info, err := conn.Info(ctx, &agentv1.InfoRequest{})
	if err == nil && !conn.Enrolled() {
		err = errors.New("the agent still serves the bootstrap certificate after enrollment")
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("node %s: check the enrolled agent: %w", n.Node, err)
	}
	n.Conn.Close()
	n.Conn, n.Info = conn, info
	return nil
}
