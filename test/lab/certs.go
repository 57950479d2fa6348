package lab

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

// writeCerts creates, once, the lab's three CAs and their leaves: etcd's
// laid out like k3s's server/tls/etcd, the API server's, and the agents'
// mTLS (what `kubectl dr install` makes in a real cluster).
func (l *Lab) writeCerts() error {
	done := filepath.Join(l.Dir, "pki", ".done")
	if _, err := os.Stat(done); err == nil {
		return l.renewAgentCerts()
	}

	etcdCA, etcdCAPair, err := pki.NewCA("etcd-server-ca")
	if err != nil {
		return err
	}
	for _, n := range l.EtcdNodes() {
		dir := filepath.Join(l.DataDir(n), "server", "tls", "etcd")
		if err := etcdCAPair.WriteFiles(filepath.Join(dir, "server-ca.crt"), filepath.Join(dir, "server-ca.key")); err != nil {
			return err
		}
		if err := etcdCAPair.WriteFiles(filepath.Join(dir, "peer-ca.crt"), filepath.Join(dir, "peer-ca.key")); err != nil {
			return err
		}
		leaves := []struct {
			file string
			opts pki.LeafOptions
		}{
			{"client", pki.LeafOptions{CommonName: "etcd-client", Client: true}},
			{"server-client", pki.LeafOptions{CommonName: "etcd-server", DNSNames: []string{"localhost", n}, IPs: loopback, Server: true, Client: true}},
			{"peer-server-client", pki.LeafOptions{CommonName: "etcd-peer", DNSNames: []string{"localhost", n}, IPs: loopback, Server: true, Client: true}},
		}
		for _, leaf := range leaves {
			kp, err := etcdCA.Issue(leaf.opts)
			if err != nil {
				return err
			}
			if err := kp.WriteFiles(filepath.Join(dir, leaf.file+".crt"), filepath.Join(dir, leaf.file+".key")); err != nil {
				return err
			}
		}
	}

	kubeDir := filepath.Join(l.Dir, "pki", "kube")
	kubeCA, kubeCAPair, err := pki.NewCA("kubernetes-ca")
	if err != nil {
		return err
	}
	if err := kubeCAPair.WriteFiles(filepath.Join(kubeDir, "ca.crt"), filepath.Join(kubeDir, "ca.key")); err != nil {
		return err
	}
	apiserver, err := kubeCA.Issue(pki.LeafOptions{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPs:        append(loopback, net.ParseIP("10.43.0.1")),
		Server:     true,
	})
	if err != nil {
		return err
	}
	if err := apiserver.WriteFiles(filepath.Join(kubeDir, "apiserver.crt"), filepath.Join(kubeDir, "apiserver.key")); err != nil {
		return err
	}
	// Service-account tokens are signed with sa.key and checked with sa.pub;
	// the certificate half is unused.
	sa, err := kubeCA.Issue(pki.LeafOptions{CommonName: "service-accounts", Client: true})
	if err != nil {
		return err
	}
	if err := sa.WriteFiles(filepath.Join(kubeDir, "sa.crt"), filepath.Join(kubeDir, "sa.key")); err != nil {
		return err
	}
	saPub, err := sa.PublicKeyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(kubeDir, "sa.pub"), saPub, 0o644); err != nil {
		return err
	}

	drDir := filepath.Join(l.Dir, "pki", "dr")
	drCA, drCAPair, err := pki.NewCA("kubectl-dr-ca")
	if err != nil {
		return err
	}
	if err := drCAPair.WriteFiles(filepath.Join(drDir, "ca.crt"), filepath.Join(drDir, "ca.key")); err != nil {
		return err
	}
	client, err := drCA.Issue(pki.LeafOptions{CommonName: "kubectl-dr", Client: true})
	if err != nil {
		return err
	}
	if err := client.WriteFiles(filepath.Join(drDir, "client.crt"), filepath.Join(drDir, "client.key")); err != nil {
		return err
	}
	for _, n := range l.State.Nodes {
		kp, err := drCA.Issue(agentLeaf(n, n == l.State.KubeNode))
		if err != nil {
			return err
		}
		dir := l.agentDir(n)
		if err := kp.WriteFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), drCAPair.CertPEM, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(done, nil, 0o644)
}

// renewAgentCerts gives the process agents of a lab made before node
// certificates one naming their node, from the lab's CA.
func (l *Lab) renewAgentCerts() error {
	var ca *pki.CA
	for _, n := range l.State.Nodes {
		if n == l.State.KubeNode {
			continue
		}
		dir := l.agentDir(n)
		if certNamesNode(filepath.Join(dir, "tls.crt"), n) {
			continue
		}
		if ca == nil {
			var err error
			drDir := filepath.Join(l.Dir, "pki", "dr")
			if ca, err = pki.LoadCA(filepath.Join(drDir, "ca.crt"), filepath.Join(drDir, "ca.key")); err != nil {
				return err
			}
		}
		kp, err := ca.Issue(agentLeaf(n, false))
		if err != nil {
			return err
		}
		if err := kp.WriteFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
			return err
		}
	}
	return nil
}

// certNamesNode reports whether the certificate file names node's agent.
func certNamesNode(path, node string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return false
	}
	c, err := x509.ParseCertificate(b.Bytes)
	return err == nil && pki.CertNode(c) == node
}

// agentLeaf is node's agent certificate from the lab's CA. A process
// agent gets its node's certificate, as an enrolled agent serves it (the
// plugin checks the name on every dial); the real node's agent gets the
// bootstrap one, in Secret dr-agent-tls, and install enrolls it.
func agentLeaf(node string, bootstrap bool) pki.LeafOptions {
	if bootstrap {
		return pki.LeafOptions{CommonName: pki.BootstrapName, DNSNames: []string{pki.BootstrapName, "localhost"}, IPs: loopback, Server: true}
	}
	return pki.LeafOptions{CommonName: pki.NodeDNSName(node), DNSNames: pki.NodeDNSNames(node), IPs: loopback, Server: true}
}

// writeSnapshotKey creates, once, the age identity etcd snapshots are
// encrypted to, as `kubectl dr install` generates it.
func (l *Lab) writeSnapshotKey() error {
	path := filepath.Join(l.Dir, "pki", "snapshot.key")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	key := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	return os.WriteFile(path, []byte(key), 0o600)
}

// ResticPasswordPath is the restic repository's password, as install keeps
// it in a Secret.
func (l *Lab) ResticPasswordPath() string { return filepath.Join(l.Dir, "pki", "restic.password") }

// writeResticPassword creates, once, the repository password.
func (l *Lab) writeResticPassword() error {
	path := l.ResticPasswordPath()
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// agentDir stands in for the node's /etc/dr-agent (the DaemonSet's mounted
// config and Secrets).
func (l *Lab) agentDir(node string) string {
	return filepath.Join(l.NodeRoot(node), "etc", "dr-agent")
}
