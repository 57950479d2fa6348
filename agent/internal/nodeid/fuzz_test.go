package nodeid_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/nodeid"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// The certificate to install comes over the wire: Install never panics,
// and anything it refuses leaves no file and no certificate served.
func FuzzInstall(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	_, caPair, err := pki.NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPair.CertPEM)
	dir := f.TempDir()
	id, err := nodeid.Load(dir, "server-1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, certPEM []byte) {
		if _, err := id.Install(certPEM, roots); err == nil {
			t.Fatal("a certificate no one with the CA's key made was installed")
		}
		if _, err := os.Stat(filepath.Join(dir, "tls", "node.crt")); err == nil {
			t.Fatal("a refused certificate was written")
		}
		if _, ok := id.Certificate(roots, time.Now()); ok {
			t.Fatal("a refused certificate is served")
		}
	})
}
