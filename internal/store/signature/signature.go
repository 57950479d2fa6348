package signature

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Format names the envelope's layout; a reader refuses another.
const Format = "kubectl-dr.signature/v1"

// Suffix is appended to an object's key to name its signature.
const Suffix = ".sig"

// MaxEnvelope bounds what Parse reads: a chain of a few certificates.
const MaxEnvelope = 64 << 10

// ErrUnsigned means an object has no signature beside it.
var ErrUnsigned = errors.New("not signed")

// ErrForged means a signature does not hold: the object was changed or
// planted after its writer signed it, or the signer may not vouch for it.
var ErrForged = errors.New("signature does not hold")

// Envelope is what KEY.sig holds: who vouches for which bytes under KEY.
type Envelope struct {
	Format string `json:"format"`
	// Key is the object's key under the cluster's prefix: a signature
	// copied beside another object does not hold there.
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Signed is when, by the signer's clock (informational).
	Signed time.Time `json:"signed"`
	// Chain is the signer's certificate, then any intermediates (DER).
	Chain [][]byte `json:"chain"`
	// Signature is over Message(Key, Size, SHA256) with the leaf's key.
	Signature []byte `json:"signature"`
}

// Message is what a signature covers: the format, the key, the size and
// the digest of the bytes, one per line.
func Message(key string, size int64, sha256Hex string) []byte {
	var b bytes.Buffer
	b.WriteString(Format)
	b.WriteByte('\n')
	b.WriteString(key)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(size, 10))
	b.WriteByte('\n')
	b.WriteString(sha256Hex)
	b.WriteByte('\n')
	return b.Bytes()
}

// Signer is a key with the certificate chain that vouches for it (a
// node's enrolled agent certificate, the plugin's client certificate).
type Signer struct {
	Key   crypto.Signer
	Chain [][]byte
}

// FromKeyPair is the signer of a TLS key pair (its certificate chain, leaf
// first, and its key).
func FromKeyPair(pair tls.Certificate) (*Signer, error) {
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || len(pair.Certificate) == 0 {
		return nil, errors.New("the key pair has no certificate, or its key cannot sign")
	}
	return &Signer{Key: key, Chain: pair.Certificate}, nil
}

// Sign makes the envelope of data stored under key.
func (s Signer) Sign(key string, data []byte, now time.Time) (Envelope, error) {
	if s.Key == nil || len(s.Chain) == 0 {
		return Envelope{}, errors.New("sign: no signing key")
	}
	sum := sha256.Sum256(data)
	e := Envelope{Format: Format, Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Signed: now.UTC(), Chain: s.Chain}
	msg := Message(e.Key, e.Size, e.SHA256)
	var err error
	switch s.Key.Public().(type) {
	case ed25519.PublicKey:
		e.Signature, err = s.Key.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		d := sha256.Sum256(msg)
		e.Signature, err = s.Key.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("sign %s: %w", key, err)
	}
	return e, nil
}

// Marshal is the envelope as stored.
func (e Envelope) Marshal() ([]byte, error) { return json.MarshalIndent(e, "", "  ") }

// Parse reads a stored envelope: untrusted bytes from the store.
func Parse(data []byte) (Envelope, error) {
	var e Envelope
	if len(data) > MaxEnvelope {
		return e, fmt.Errorf("%w: the signature is %d bytes (at most %d)", ErrForged, len(data), MaxEnvelope)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: the signature does not parse: %v", ErrForged, err)
	}
	if e.Format != Format {
		return e, fmt.Errorf("%w: the signature's format is %q (want %q)", ErrForged, e.Format, Format)
	}
	if len(e.Chain) == 0 || len(e.Signature) == 0 {
		return e, fmt.Errorf("%w: the signature holds no certificate or no signature", ErrForged)
	}
	return e, nil
}

// Who is whom a verified signature names.
type Who struct {
	// Node is the node whose agent signed, or "" for the plugin.
	Node string
	// Subject is the certificate's common name, for messages.
	Subject string
}

// String is "node server-1" or "kubectl dr".
func (w Who) String() string {
	if w.Node != "" {
		return "node " + w.Node
	}
	return "kubectl dr (" + w.Subject + ")"
}

// Trust is what a reader believes: the CA install made, and how a
// certificate names a node.
type Trust struct {
	Roots *x509.CertPool
	// NodeOf returns the node an agent certificate names, "" for none.
	NodeOf func(*x509.Certificate) string
	// Now is the time to check the certificates at (zero: now).
	Now time.Time
}

// Owner is who may vouch for an object.
type Owner struct {
	// Node is the node whose object it is: only that node's agent (or the
	// plugin) may sign it. Empty: any enrolled node, or the plugin.
	Node string
	// PluginOnly leaves the nodes out (records only kubectl dr writes).
	PluginOnly bool
}

// Verify checks that e vouches for data under key, signed by someone owner
// allows, with a certificate chaining to the trusted CA. It returns whom.
func (t Trust) Verify(e Envelope, key string, data []byte, owner Owner) (Who, error) {
	if t.Roots == nil {
		return Who{}, errors.New("verify signature: no trusted CA")
	}
	if e.Key != key {
		return Who{}, fmt.Errorf("%w: %s carries the signature of %s", ErrForged, key, e.Key)
	}
	sum := sha256.Sum256(data)
	if e.Size != int64(len(data)) || e.SHA256 != hex.EncodeToString(sum[:]) {
		return Who{}, fmt.Errorf("%w: %s changed after it was signed (%d bytes, sha256 %.12s; signed %d bytes, sha256 %.12s)",
			ErrForged, key, len(data), hex.EncodeToString(sum[:]), e.Size, e.SHA256)
	}
	certs := make([]*x509.Certificate, 0, len(e.Chain))
	for i, der := range e.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return Who{}, fmt.Errorf("%w: %s: certificate %d of its signer does not parse: %v", ErrForged, key, i, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := t.Now
	if now.IsZero() {
		now = time.Now()
	}
	// A record outlives the certificate that signed it: the chain must
	// have been valid when it was signed, and signed before now.
	at := e.Signed
	if at.IsZero() || at.After(now.Add(time.Hour)) {
		at = now
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.Roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Who{}, fmt.Errorf("%w: %s: its signer's certificate (%s) is not from this cluster's CA: %v", ErrForged, key, leaf.Subject.CommonName, err)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return Who{}, fmt.Errorf("%w: %s: its signer's certificate (%s) may not sign", ErrForged, key, leaf.Subject.CommonName)
	}
	msg := Message(e.Key, e.Size, e.SHA256)
	if err := check(leaf.PublicKey, msg, e.Signature); err != nil {
		return Who{}, fmt.Errorf("%w: %s: %v", ErrForged, key, err)
	}
	who := Who{Subject: leaf.Subject.CommonName}
	if t.NodeOf != nil {
		who.Node = t.NodeOf(leaf)
	}
	switch {
	case who.Node != "" && owner.PluginOnly:
		return who, fmt.Errorf("%w: %s is signed by %s; only kubectl dr writes it", ErrForged, key, who)
	case who.Node != "" && owner.Node != "" && who.Node != owner.Node:
		return who, fmt.Errorf("%w: %s belongs to node %s but is signed by %s: a node vouches only for its own objects", ErrForged, key, owner.Node, who)
	case who.Node == "" && !isClient(leaf):
		return who, fmt.Errorf("%w: %s: its signer's certificate (%s) names no node and is not kubectl dr's", ErrForged, key, leaf.Subject.CommonName)
	}
	return who, nil
}

// isClient reports whether a certificate is a client certificate (the
// plugin's), not a server's without a node (the agents' bootstrap one,
// which every node holds).
func isClient(c *x509.Certificate) bool {
	client, server := false, false
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageClientAuth:
			client = true
		case x509.ExtKeyUsageServerAuth:
			server = true
		}
	}
	return client && !server
}

func check(pub any, msg, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, sig) {
			return errors.New("the signature does not match its signer's key")
		}
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(k, d[:], sig) {
			return errors.New("the signature does not match its signer's key")
		}
	default:
		return fmt.Errorf("its signer's key is a %T (want ECDSA or Ed25519)", pub)
	}
	return nil
}
