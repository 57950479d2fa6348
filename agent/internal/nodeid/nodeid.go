package nodeid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// Files under the state dir.
const (
	dirName  = "tls"
	keyName  = "node.key"
	certName = "node.crt"
)

// Identity is the node's key and, once enrolled, its certificate.
type Identity struct {
	Node   string
	Signer crypto.Signer

	dir string
	mu  sync.Mutex
	// chain is the enrolled certificate chain (DER, leaf first); nil
	// before enrollment.
	chain [][]byte
	leaf  *x509.Certificate
}

// Load reads node's identity under stateDir, creating the key at the
// first start.
func Load(stateDir, node string) (*Identity, error) {
	if node == "" {
		return nil, errors.New("node identity: no node name")
	}
	dir := filepath.Join(stateDir, dirName)
	id := &Identity{Node: node, dir: dir}
	keyPath := filepath.Join(dir, keyName)
	keyPEM, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if id.Signer, err = create(dir, keyPath); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read node key: %w", err)
	default:
		if id.Signer, err = pki.ParseSigner(keyPEM); err != nil {
			return nil, fmt.Errorf("node key %s: %w (move it aside: the agent makes a new one and is enrolled again by kubectl dr install)", keyPath, err)
		}
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, certName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read node certificate: %w", err)
	default:
		// A certificate that no longer fits (another key, a garbled file)
		// is as good as none: the node serves the bootstrap one and is
		// enrolled again.
		if chain, leaf, err := id.parseChain(certPEM); err == nil {
			id.chain, id.leaf = chain, leaf
		}
	}
	return id, nil
}

func create(dir, path string) (crypto.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode node key: %w", err)
	}
	if err := durable.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write node key: %w", err)
	}
	return key, nil
}

// parseChain reads PEM certificates and checks the leaf is for the node's
// key.
func (id *Identity) parseChain(certPEM []byte) ([][]byte, *x509.Certificate, error) {
	var chain [][]byte
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	if !pki.SameKey(leaf, id.Signer) {
		return nil, nil, errors.New("the certificate is not for this node's key")
	}
	return chain, leaf, nil
}

// Request is the certificate request for the node's key.
func (id *Identity) Request() ([]byte, error) { return pki.NodeRequest(id.Signer, id.Node) }

// Install checks an issued certificate (PEM, leaf first) and keeps it:
// for this node's key, chaining to roots (the CA the agent trusts for its
// clients) and naming this node. A certificate that fails is refused and
// the one the node had stays.
func (id *Identity) Install(certPEM []byte, roots *x509.CertPool) (*x509.Certificate, error) {
	chain, leaf, err := id.parseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("install node certificate: %w", err)
	}
	certs := []*x509.Certificate{leaf}
	for _, der := range chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("install node certificate: parse its chain: %w", err)
		}
		certs = append(certs, c)
	}
	enrolled, err := pki.VerifyAgent(certs, roots, id.Node, time.Now())
	if err != nil {
		return nil, fmt.Errorf("install node certificate: %w", err)
	}
	if !enrolled {
		return nil, fmt.Errorf("install node certificate: it names no node (want %s)", pki.NodeDNSName(id.Node))
	}
	if err := durable.WriteFile(filepath.Join(id.dir, certName), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("install node certificate: %w", err)
	}
	id.mu.Lock()
	id.chain, id.leaf = chain, leaf
	id.mu.Unlock()
	return leaf, nil
}

// Certificate is the node's certificate for TLS when it has one that
// chains to roots and has not expired; ok is false otherwise (serve the
// bootstrap certificate: the node is to be enrolled, again after the CA
// was renewed).
func (id *Identity) Certificate(roots *x509.CertPool, now time.Time) (cert *tls.Certificate, ok bool) {
	id.mu.Lock()
	chain, leaf := id.chain, id.leaf
	id.mu.Unlock()
	if leaf == nil {
		return nil, false
	}
	if enrolled, err := pki.VerifyAgent([]*x509.Certificate{leaf}, roots, id.Node, now); err != nil || !enrolled {
		return nil, false
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: id.Signer, Leaf: leaf}, true
}

// CertChain is the enrolled certificate chain (DER, leaf first), nil
// before enrollment.
func (id *Identity) CertChain() [][]byte {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.chain
}
