package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files names the PEM files of one side of the connection, or carries the
// PEM bytes themselves (read from a Secret); bytes win over file names.
type Files struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`

	CAPEM   []byte `json:"-"`
	CertPEM []byte `json:"-"`
	KeyPEM  []byte `json:"-"`
	// RetiredPEM is the certificates of the CAs install replaced (key
	// RetiredCAFile of its Secrets): records they vouched for still
	// verify; TLS never trusts them.
	RetiredPEM []byte `json:"-"`
}

// RetiredCAFile is the key, in install's TLS Secrets, and the file beside
// the CA file where an agent mounts them, of the CAs an install renewed
// away from: a record's signature outlives the CA that issued its
// signer's certificate.
const RetiredCAFile = "retired-ca.crt"

// ErrNoCredentials means no certificate files were given.
var ErrNoCredentials = errors.New("no TLS credentials configured")

// IsZero reports whether neither file names nor bytes are set.
func (f Files) IsZero() bool {
	return f.CA == "" && f.Cert == "" && f.Key == "" && len(f.CAPEM) == 0 && len(f.CertPEM) == 0 && len(f.KeyPEM) == 0
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	if len(f.CAPEM) > 0 && len(f.CertPEM) > 0 && len(f.KeyPEM) > 0 {
		pair, err := tls.X509KeyPair(f.CertPEM, f.KeyPEM)
		if err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("load key pair: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(f.CAPEM) {
			return tls.Certificate{}, nil, errors.New("read CA: no PEM certificate in it")
		}
		return pair, pool, nil
	}
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return tls.Certificate{}, nil, fmt.Errorf("%w: need a CA, a certificate and a key (got ca=%q cert=%q key=%q)", ErrNoCredentials, f.CA, f.Cert, f.Key)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load key pair %s: %w", f.Cert, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: %w", f.CA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("read CA %s: no PEM certificate in it", f.CA)
	}
	return pair, pool, nil
}

// ServerConfig requires and verifies client certificates.
func ServerConfig(f Files) (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientConfig presents the client certificate and verifies the server's
// against the CA. serverName is the name the agent's certificate must carry.
func ClientConfig(f Files, serverName string) (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// Roots is what a reader checks signatures against: the CA and the CAs
// it replaced (RetiredPEM, or RetiredCAFile beside the CA file when
// there is one), never the key pair.
func (f Files) Roots() (*x509.CertPool, error) {
	caPEM, retired := f.CAPEM, f.RetiredPEM
	if len(caPEM) == 0 {
		if f.CA == "" {
			return nil, fmt.Errorf("%w: no CA", ErrNoCredentials)
		}
		var err error
		if caPEM, err = os.ReadFile(f.CA); err != nil {
			return nil, fmt.Errorf("read CA %s: %w", f.CA, err)
		}
		name := filepath.Join(filepath.Dir(f.CA), RetiredCAFile)
		switch data, err := os.ReadFile(name); {
		case err == nil:
			retired = data
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read the retired CAs %s: %w", name, err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("read CA: no PEM certificate in it")
	}
	if len(bytes.TrimSpace(retired)) > 0 && !pool.AppendCertsFromPEM(retired) {
		return nil, errors.New("read the retired CAs: no PEM certificate in them")
	}
	return pool, nil
}

// KeyPair is the certificate and key alone.
func (f Files) KeyPair() (tls.Certificate, error) {
	pair, _, err := f.load()
	return pair, err
}
