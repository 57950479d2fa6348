package nodecreds

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Creds are a pair of store credentials.
type Creds struct {
	AccessKey, SecretKey string
}

// Result says what MinIO did.
type Result struct {
	Creds Creds
	// Created: a new service account; otherwise the existing one's policy
	// was set again.
	Created bool
}

// MinIO makes (or, given existing, updates) a service account of the
// admin user admin on the MinIO server of store c, restricted by Policy.
// A service account rather than STS AssumeRole: its keys do not expire,
// so the Secret the nodes mount needs no refresher holding admin
// credentials.
func MinIO(ctx context.Context, c objstore.Config, admin Creds, existing *Creds) (Result, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Result{}, fmt.Errorf("store URL %q: scoped node credentials need an s3:// store", c.URL)
	}
	policy, err := Policy(u.Host, u.Path)
	if err != nil {
		return Result{}, err
	}
	adm, err := adminClient(c, admin)
	if err != nil {
		return Result{}, err
	}
	if existing != nil && existing.AccessKey != "" {
		_, err := adm.InfoServiceAccount(ctx, existing.AccessKey)
		if err == nil {
			if err := adm.UpdateServiceAccount(ctx, existing.AccessKey, madmin.UpdateServiceAccountReq{NewPolicy: policy}); err != nil {
				return Result{}, explain("update the node service account "+existing.AccessKey, err)
			}
			return Result{Creds: *existing}, nil
		}
		if !notFound(err) {
			return Result{}, explain("look up the node service account "+existing.AccessKey, err)
		}
	}
	access, err := randomKey(20)
	if err != nil {
		return Result{}, err
	}
	secret, err := randomKey(40)
	if err != nil {
		return Result{}, err
	}
	got, err := adm.AddServiceAccount(ctx, madmin.AddServiceAccountReq{
		Policy:      policy,
		AccessKey:   access,
		SecretKey:   secret,
		Name:        "dr-nodes",
		Description: "kubectl dr node credentials: put and get, no delete (" + c.URL + ")",
	})
	if err != nil {
		return Result{}, explain("create the node service account", err)
	}
	return Result{Creds: Creds{AccessKey: got.AccessKey, SecretKey: got.SecretKey}, Created: true}, nil
}

func notFound(err error) bool {
	code := madmin.ToErrorResponse(err).Code
	return code == "XMinioAdminServiceAccountNotFound" || code == "XMinioAdminNoSuchServiceAccount" || strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "does not exist")
}

func explain(what string, err error) error {
	resp := madmin.ToErrorResponse(err)
	switch {
	case resp.Code == "AccessDenied":
		return fmt.Errorf("%s: the admin credentials were refused (%s): give MinIO admin credentials (a user with admin:CreateServiceAccount and admin:UpdateServiceAccount), or make the node credentials yourself and pass --store-node-access-key-file/--store-node-secret-key-file", what, resp.Code)
	case resp.Code != "":
		return fmt.Errorf("%s: MinIO answered %s: %s (a store other than MinIO has no such admin API: make the node credentials with its IAM and pass --store-node-access-key-file/--store-node-secret-key-file)", what, resp.Code, resp.Message)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: MinIO admin API unreachable: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func adminClient(c objstore.Config, admin Creds) (*madmin.AdminClient, error) {
	endpoint, secure := c.Endpoint, true
	if endpoint == "" {
		return nil, fmt.Errorf("scoped node credentials through the MinIO admin API need --s3-endpoint (AWS S3: make an IAM user with the policy in docs/security.md and pass --store-node-access-key-file/--store-node-secret-key-file)")
	}
	if strings.Contains(endpoint, "://") {
		e, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("S3 endpoint %q: %w", c.Endpoint, err)
		}
		endpoint, secure = e.Host, e.Scheme == "https"
	}
	opts := &madmin.Options{Creds: credentials.NewStaticV4(admin.AccessKey, admin.SecretKey, ""), Secure: secure}
	if c.CAFile != "" || len(c.CAPEM) > 0 {
		pem := c.CAPEM
		if c.CAFile != "" {
			var err error
			if pem, err = os.ReadFile(c.CAFile); err != nil {
				return nil, fmt.Errorf("read S3 CA file: %w", err)
			}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("S3 CA: no PEM certificate")
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.Transport = tr
	}
	adm, err := madmin.NewWithOptions(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("MinIO admin client for %s: %w", endpoint, err)
	}
	return adm, nil
}

// randomKey is n characters of base32 (A-Z, 2-7): valid as MinIO access
// and secret keys.
func randomKey(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:n], nil
}
