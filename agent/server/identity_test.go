package server_test

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// An agent with only the bootstrap certificate is enrolled: it installs
// only a certificate of its CA, for its key and its node, and serves it
// at once; then the plugin refuses it as any other node.
func TestEnrollment(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	cfg := &agentconfig.Config{NodeName: "server-1", DataDir: filepath.Join(dir, "k3s"), StateDir: filepath.Join(dir, "state"), TLS: c.server,
		Restic: agentconfig.Restic{Binary: "/nonexistent/restic"}}
	lis := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := agentclient.Options{TLS: c.client, Dialer: func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }}
	dial := func(node string) *agentclient.Conn {
		t.Helper()
		conn, err := agentclient.Dial(ctx, agentclient.Target{Node: node, Address: "bufnet"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	conn := dial("server-1")
	if _, err := conn.Info(ctx, &agentv1.InfoRequest{}); err != nil {
		t.Fatalf("info with the bootstrap certificate: %v", err)
	}
	if conn.Enrolled() {
		t.Fatal("an agent serving the bootstrap certificate counts as enrolled")
	}

	for _, tc := range []struct {
		name string
		ca   *pki.CA
		node string
		want string
	}{
		{"another CA", c.otherCA, "server-1", "certificate signed by unknown authority"},
		{"another node", c.ca, "server-2", "presents the certificate of node server-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := agentclient.Enroll(ctx, conn, tc.node, tc.ca)
			if err == nil || !strings.Contains(err.Error(), "the agent refused its certificate") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Enroll: %v, want the agent's refusal saying %q", err, tc.want)
			}
		})
	}
	// Another key than the node's: the agent checks the certificate is
	// for the key it holds.
	r, err := conn.Identity().GetNodeCertificateRequest(ctx, &agentv1.GetNodeCertificateRequestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetNode() != "server-1" || r.GetEnrolled() {
		t.Errorf("certificate request: node %q enrolled %v", r.GetNode(), r.GetEnrolled())
	}
	kp, err := c.ca.Issue(pki.LeafOptions{CommonName: "x", DNSNames: pki.NodeDNSNames("server-1"), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Identity().InstallNodeCertificate(ctx, &agentv1.InstallNodeCertificateRequest{CertificatePem: kp.CertPEM}); err == nil || !strings.Contains(err.Error(), "not for this node's key") {
		t.Errorf("install a certificate for another key: %v", err)
	}
	if again := dial("server-1"); func() bool { _, err := again.Info(ctx, &agentv1.InfoRequest{}); return err != nil || again.Enrolled() }() {
		t.Fatal("after refused certificates the agent does not serve the bootstrap certificate")
	}

	if err := agentclient.Enroll(ctx, conn, "server-1", c.ca); err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	enrolled := dial("server-1")
	if _, err := enrolled.Info(ctx, &agentv1.InfoRequest{}); err != nil || !enrolled.Enrolled() {
		t.Fatalf("after enrollment, without a restart: info %v, enrolled %v", err, enrolled.Enrolled())
	}

	// Dialled as another node, its certificate is refused, naming both.
	nodes, err := agentclient.Connect(ctx, agentclient.Options{Agents: []string{"server-2=bufnet:1"}, TLS: c.client, Dialer: opts.Dialer, Warnings: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer nodes.Close()
	const want = "node server-2: the agent answering there presents the certificate of node server-1: refused"
	if n := nodes[0]; n.Ready() || n.Err == nil || !strings.Contains(n.Err.Error(), want) {
		t.Errorf("server-1's agent dialled as server-2: ready %v, err %v; want %q", n.Ready(), n.Err, want)
	}

	// A restarted agent keeps its certificate.
	lis2 := startAgent(t, cfg)
	restarted, err := agentclient.Dial(ctx, agentclient.Target{Node: "server-1", Address: "bufnet"}, agentclient.Options{TLS: c.client,
		Dialer: func(ctx context.Context, _ string) (net.Conn, error) { return lis2.DialContext(ctx) }})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	if _, err := restarted.Info(ctx, &agentv1.InfoRequest{}); err != nil || !restarted.Enrolled() {
		t.Errorf("restarted agent: info %v, enrolled %v", err, restarted.Enrolled())
	}
}
