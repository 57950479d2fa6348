package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// BootstrapName is the DNS name of the certificate every agent shares
// until it is enrolled (and of nothing else).
const BootstrapName = "dr-agent"

// nodeDomain is under which an enrolled agent's certificate names its
// node: NODE.node.dr-agent.
const nodeDomain = ".node." + BootstrapName

// NodeDNSName is the DNS name of node's agent certificate.
func NodeDNSName(node string) string { return node + nodeDomain }

// NodeDNSNames are the DNS names of node's agent certificate: its node's
// name, and the bootstrap name, for clients that check only that one (a
// plugin from before enrollment, during an upgrade).
func NodeDNSNames(node string) []string { return []string{NodeDNSName(node), BootstrapName} }

// CertNode returns the node an agent certificate names, or "" for a
// certificate that names none (the bootstrap one).
func CertNode(cert *x509.Certificate) string {
	for _, n := range cert.DNSNames {
		if node, ok := strings.CutSuffix(n, nodeDomain); ok && node != "" {
			return node
		}
	}
	return ""
}

// NodeMismatchError is an agent certificate that names another node than
// the one dialled.
type NodeMismatchError struct {
	Dialled, Named string
}

func (e *NodeMismatchError) Error() string {
	return fmt.Sprintf("node %s: the agent answering there presents the certificate of node %s: refused (check that the pod or --agent address given for %s is that node's agent; a node renamed from %s: remove tls/ under the agent's state dir there and run kubectl dr install again)",
		e.Dialled, e.Named, e.Dialled, e.Named)
}

// ErrNotAgentCert means a certificate chains to the CA but is no agent's
// server certificate (neither the bootstrap nor a node's).
var ErrNotAgentCert = errors.New("not an agent certificate")

// VerifyAgent checks an agent's certificate chain (leaf first, as TLS
// presents it) against roots for node. A certificate for node returns
// enrolled; the shared bootstrap certificate returns not enrolled; one for
// another node is a *NodeMismatchError.
func VerifyAgent(chain []*x509.Certificate, roots *x509.CertPool, node string, now time.Time) (enrolled bool, err error) {
	if len(chain) == 0 {
		return false, errors.New("the agent presented no certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false, fmt.Errorf("verify the agent's certificate: %w", err)
	}
	switch named := CertNode(leaf); {
	case named == node:
		return true, nil
	case named != "":
		return false, &NodeMismatchError{Dialled: node, Named: named}
	case slices.Contains(leaf.DNSNames, BootstrapName):
		return false, nil
	}
	return false, fmt.Errorf("verify the agent's certificate: %w (DNS names %v)", ErrNotAgentCert, leaf.DNSNames)
}

// SignNode issues node's agent certificate for the public key of a
// certificate request. Only the key is taken from the request: the name is
// the node the caller dialled, whatever the request says.
func (ca *CA) SignNode(csrDER []byte, node string, validity time.Duration) ([]byte, error) {
	if node == "" || strings.ContainsAny(node, " /") {
		return nil, fmt.Errorf("sign agent certificate: node name %q is not a node name", node)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for node %s: parse its request: %w", node, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign agent certificate for node %s: the request is not signed by its key: %w", node, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: NodeDNSName(node)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     NodeDNSNames(node),
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for node %s: %w", node, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// NodeRequest is the certificate request of key for node: what an agent
// sends to be enrolled.
func NodeRequest(key crypto.Signer, node string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: NodeDNSName(node)},
		DNSNames: []string{NodeDNSName(node)},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request for node %s: %w", node, err)
	}
	return der, nil
}

// ParseCA reads a CA from PEM bytes (a Secret's ca.crt and ca.key).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil {
		return nil, errors.New("CA certificate: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	signer, err := ParseSigner(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicEqual(signer.Public(), cert.PublicKey) {
		return nil, errors.New("CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// publicEqual reports whether two public keys are the same key.
func publicEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// SameKey reports whether cert is for the public half of key.
func SameKey(cert *x509.Certificate, key crypto.Signer) bool {
	return publicEqual(key.Public(), cert.PublicKey)
}
