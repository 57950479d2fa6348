package mtls_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
)

// An agent's record trust is its mounted CA and the retired CAs beside
// it: a leaf of either verifies, a stranger's does not; without the file
// only the CA is trusted; a retired file that holds no certificate is an
// error, not an empty trust.
func TestRootsTakeTheRetiredCAsBesideTheCA(t *testing.T) {
	dir := t.TempDir()
	issue := func(name string) (*x509.Certificate, []byte) {
		ca, pair, err := pki.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := ca.Issue(pki.LeafOptions{CommonName: name + "-leaf", Server: true})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := parse(kp.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return leaf, pair.CertPEM
	}
	current, currentPEM := issue("current")
	old, oldPEM := issue("old")
	stranger, _ := issue("stranger")
	files := mtls.Files{CA: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(files.CA, currentPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	verifies := func(c *x509.Certificate) bool {
		roots, err := files.Roots()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	if !verifies(current) || verifies(old) {
		t.Errorf("without %s: current %v, old %v; want only the current CA's", mtls.RetiredCAFile, verifies(current), verifies(old))
	}
	if err := os.WriteFile(filepath.Join(dir, mtls.RetiredCAFile), oldPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if !verifies(current) || !verifies(old) || verifies(stranger) {
		t.Errorf("with %s: current %v, old %v, stranger %v; want both CAs', not the stranger's", mtls.RetiredCAFile, verifies(current), verifies(old), verifies(stranger))
	}
	if err := os.WriteFile(filepath.Join(dir, mtls.RetiredCAFile), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := files.Roots(); err == nil || !strings.Contains(err.Error(), "retired CAs") {
		t.Errorf("a retired file with no certificate: %v; want an error naming it", err)
	}
}

func parse(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("no PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}
