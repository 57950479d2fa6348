package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// A certificate request comes from an agent, which may be a compromised
// node's: SignNode never panics, and what it signs names the node given,
// whatever the request asked.
func FuzzSignNode(f *testing.F) {
	f.Add([]byte("not a request"))
	ca, caPair, err := pki.NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPair.CertPEM)
	f.Fuzz(func(t *testing.T, csr []byte) {
		certPEM, err := ca.SignNode(csr, "server-1", time.Hour)
		if err != nil {
			return
		}
		b, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("signed certificate does not parse: %v", err)
		}
		if enrolled, err := pki.VerifyAgent([]*x509.Certificate{cert}, roots, "server-1", time.Now()); err != nil || !enrolled {
			t.Fatalf("signed certificate does not verify for server-1: %v", err)
		}
	})
}
