package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// servedCertificate is the certificate the agent at addr presents to the
// install's client certificate, checked against the install's CA.
func servedCertificate(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	files := mtls.Files{CA: labEnv(t, "KUBECTL_DR_CA"), Cert: labEnv(t, "KUBECTL_DR_CERT"), Key: labEnv(t, "KUBECTL_DR_KEY")}
	cfg, err := mtls.ClientConfig(files, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS to the agent at %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// After install the real node's agent serves a certificate naming its
// node, made for a key that stayed on the node: install enrolled it.
func TestInstallEnrollsTheNodesAgent(t *testing.T) {
	node := theLab.State.KubeNode
	cert := servedCertificate(t, theLab.AgentAddr(node))
	if got := pki.CertNode(cert); got != node {
		t.Fatalf("the agent of %s serves a certificate for node %q (DNS names %v), want its own", node, got, cert.DNSNames)
	}
	if !strings.Contains(strings.Join(cert.DNSNames, ","), node+".node.dr-agent") {
		t.Errorf("DNS names %v, want %s.node.dr-agent", cert.DNSNames, node)
	}
	// The key is the node's own, in its state dir; the CA is nowhere on it.
	cfg, err := theLab.AgentConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cfg.StateDir + "/tls/node.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("node key in the state dir: %v, %v; want a 0600 file", fi, err)
	}
	pods := runKubectl(t, "-n", "dr-system", "get", "daemonset", "dr-agent", "-o", "yaml")
	if strings.Contains(pods, "dr-agent-ca") {
		t.Errorf("the DaemonSet mounts the CA Secret dr-agent-ca:\n%s", pods)
	}

	ensureRecoveryPoints(t)
	r := kubectlDR(t, nil, "status", "-o", "json")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "bootstrap certificate") {
		t.Errorf("status warns about an agent not enrolled:\n%s", r.stderr)
	}
	for _, s := range statusJSON(t, r).Items {
		if s.Certificate != printers.CertificateNode {
			t.Errorf("node %s: certificate %q, want %q (every agent enrolled)", s.Node, s.Certificate, printers.CertificateNode)
		}
	}
}

// An address given for one node that reaches another node's agent is
// refused with both names; the other nodes still answer.
func TestAgentWithAnotherNodesCertificateIsRefused(t *testing.T) {
	// Every layer recent: the exit code says only that a node failed.
	ensureRecoveryPoints(t)
	var agents []string
	for _, e := range strings.Split(labEnv(t, "KUBECTL_DR_AGENTS"), ",") {
		if strings.HasPrefix(e, "server-2=") {
			e = "server-2=" + theLab.AgentAddr("server-3")
		}
		agents = append(agents, e)
	}
	r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=" + strings.Join(agents, ",")}, "status")
	if r.code != 3 {
		t.Fatalf("status: exit %d, want 3 (partial)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	const want = "error: node server-2: the agent answering there presents the certificate of node server-3: refused (check that the pod or --agent address given for server-2 is that node's agent"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not refuse server-2's agent:\n%s\nwant %q", r.stderr, want)
	}
	// The nodes' table, before the layers' (whose rows start with node
	// names too).
	nodesTable, _, _ := strings.Cut(r.stdout, "\n\n")
	rows := map[string][]string{}
	for _, line := range strings.Split(nodesTable, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = f
		}
	}
	for _, n := range []string{"agent-1", "server-1", "server-3"} {
		if got := rows[n]; len(got) < 2 || got[1] != "Ready" {
			t.Errorf("%s row %v, want Ready\n%s", n, got, r.stdout)
		}
	}
	if got := rows["server-2"]; len(got) < 2 || got[1] != "Unreachable" {
		t.Errorf("server-2 row %v, want Unreachable\n%s", got, r.stdout)
	}
}
