package nodeid_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/nodeid"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

func TestLoadKeepsTheKeyAndTheInstalledCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caPair, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPair.CertPEM)

	id, err := nodeid.Load(dir, "server-1")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "tls", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("node.key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, ok := id.Certificate(roots, time.Now()); ok {
		t.Fatal("a new identity has a certificate")
	}
	csr, err := id.Request()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csr, "server-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.Install(certPEM, roots); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if _, ok := id.Certificate(roots, time.Now()); !ok {
		t.Fatal("no certificate after Install")
	}

	again, err := nodeid.Load(dir, "server-1")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Signer.Public().(*ecdsa.PublicKey).Equal(id.Signer.Public()) {
		t.Error("a second Load made another key")
	}
	c, ok := again.Certificate(roots, time.Now())
	if !ok || pki.CertNode(c.Leaf) != "server-1" {
		t.Errorf("after a restart: certificate %v, %v; want server-1's", c, ok)
	}
	// After the CA is renewed the node's certificate no longer counts:
	// the agent serves the bootstrap one and is enrolled again.
	_, newPair, err := pki.NewCA("renewed")
	if err != nil {
		t.Fatal(err)
	}
	newRoots := x509.NewCertPool()
	newRoots.AppendCertsFromPEM(newPair.CertPEM)
	if _, ok := again.Certificate(newRoots, time.Now()); ok {
		t.Error("a certificate of the old CA is served after the CA was renewed")
	}
	if _, ok := again.Certificate(roots, time.Now().Add(2*time.Hour)); ok {
		t.Error("an expired certificate is served")
	}
}

func TestInstallRefuses(t *testing.T) {
	dir := t.TempDir()
	ca, caPair, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := pki.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPair.CertPEM)
	id, err := nodeid.Load(dir, "server-1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := id.Request()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ca *pki.CA, csr []byte, node string) []byte {
		t.Helper()
		p, err := ca.SignNode(csr, node, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherCSR, err := pki.NodeRequest(otherKey, "server-1")
	if err != nil {
		t.Fatal(err)
	}
	bootstrap, err := ca.Issue(pki.LeafOptions{CommonName: "dr-agent", DNSNames: []string{"dr-agent"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cert []byte
		want string
	}{
		"wrong key":  {sign(ca, otherCSR, "server-1"), "not for this node's key"},
		"wrong CA":   {sign(other, csr, "server-1"), "certificate signed by unknown authority"},
		"wrong node": {sign(ca, csr, "server-2"), "presents the certificate of node server-2"},
		"no node":    {bootstrap.CertPEM, "not for this node's key"},
		"garbage":    {[]byte("nope"), "no PEM certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := id.Install(tc.cert, roots); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Install: %v, want an error saying %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "tls", "node.crt")); err == nil {
				t.Error("a refused certificate was written")
			}
			if _, ok := id.Certificate(roots, time.Now()); ok {
				t.Error("a refused certificate is served")
			}
		})
	}
}

func TestLoadRefusesAGarbledKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls", "node.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nodeid.Load(dir, "server-1"); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("Load of a garbled key: %v", err)
	}
}
