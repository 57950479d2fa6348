package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignNodeNamesTheNodeDialledNotTheRequest(t *testing.T) {
	ca, caPair, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The request asks for server-2; the plugin dialled server-1.
	csr, err := pki.NodeRequest(key, "server-2")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csr, "server-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, certPEM)
	if got := pki.CertNode(cert); got != "server-1" {
		t.Errorf("certificate names node %q, want server-1 (DNS names %v)", got, cert.DNSNames)
	}
	if !pki.SameKey(cert, key) {
		t.Error("certificate is not for the request's key")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPair.CertPEM)
	if enrolled, err := pki.VerifyAgent([]*x509.Certificate{cert}, roots, "server-1", time.Now()); err != nil || !enrolled {
		t.Errorf("VerifyAgent(server-1) = %v, %v; want enrolled", enrolled, err)
	}
}

func TestVerifyAgent(t *testing.T) {
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
	nodeCert := func(ca *pki.CA, node string) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.NodeRequest(key, node)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ca.SignNode(csr, node, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, p)
	}
	leaf := func(ca *pki.CA, o pki.LeafOptions) *x509.Certificate {
		kp, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, kp.CertPEM)
	}
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		enrolled bool
		err      string
	}{
		{name: "own node", cert: nodeCert(ca, "server-1"), enrolled: true},
		{name: "bootstrap", cert: leaf(ca, pki.LeafOptions{CommonName: "dr-agent", DNSNames: []string{"dr-agent"}, Server: true})},
		{name: "another node", cert: nodeCert(ca, "server-2"), err: "node server-1: the agent answering there presents the certificate of node server-2: refused"},
		{name: "another CA", cert: nodeCert(other, "server-1"), err: "verify the agent's certificate: x509: certificate signed by unknown authority"},
		{name: "client certificate", cert: leaf(ca, pki.LeafOptions{CommonName: "kubectl-dr", DNSNames: []string{"dr-agent"}, Client: true}), err: "incompatible key usage"},
		{name: "no agent name", cert: leaf(ca, pki.LeafOptions{CommonName: "x", DNSNames: []string{"localhost"}, Server: true}), err: "not an agent certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enrolled, err := pki.VerifyAgent([]*x509.Certificate{tc.cert}, roots, "server-1", time.Now())
			if enrolled != tc.enrolled {
				t.Errorf("enrolled = %v, want %v", enrolled, tc.enrolled)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one saying %q", err, tc.err)
			}
		})
	}
	var mismatch *pki.NodeMismatchError
	_, err = pki.VerifyAgent([]*x509.Certificate{nodeCert(ca, "server-2")}, roots, "server-1", time.Now())
	if !errors.As(err, &mismatch) || mismatch.Named != "server-2" || mismatch.Dialled != "server-1" {
		t.Errorf("error %v is not a NodeMismatchError naming both nodes", err)
	}
}

func TestSignNodeRefusesBadRequests(t *testing.T) {
	ca, _, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NodeRequest(key, "server-1")
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), csr...)
	tampered[len(tampered)-5] ^= 0xff
	for name, tc := range map[string]struct {
		csr  []byte
		node string
		want string
	}{
		"garbage":  {[]byte("not a request"), "server-1", "parse its request"},
		"tampered": {tampered, "server-1", "sign agent certificate for node server-1"},
		"no node":  {csr, "", "is not a node name"},
		"a path":   {csr, "a/b", "is not a node name"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ca.SignNode(tc.csr, tc.node, time.Hour); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SignNode: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestParseCARefusesAKeyOfAnotherCA(t *testing.T) {
	_, a, err := pki.NewCA("a")
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := pki.NewCA("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.ParseCA(a.CertPEM, a.KeyPEM); err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if _, err := pki.ParseCA(a.CertPEM, b.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("ParseCA with another CA's key: %v", err)
	}
}
