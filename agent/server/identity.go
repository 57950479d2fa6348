package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/nodeid"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// identityServer is the enrollment service (identity.proto).
type identityServer struct {
	agentv1.UnimplementedIdentityServiceServer
	s *Server
}

func (s *Server) nodeIdentity() (*nodeid.Identity, error) {
	s.identityOnce.Do(func() {
		if s.cfg.StateDir == "" {
			s.identityErr = fmt.Errorf("node identity: no stateDir configured")
			return
		}
		s.identity, s.identityErr = nodeid.Load(s.cfg.StateDir, s.cfg.NodeName)
	})
	return s.identity, s.identityErr
}

func (i identityServer) GetNodeCertificateRequest(ctx context.Context, _ *agentv1.GetNodeCertificateRequestRequest) (*agentv1.GetNodeCertificateRequestResponse, error) {
	id, err := i.s.nodeIdentity()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	csr, err := id.Request()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	resp := &agentv1.GetNodeCertificateRequestResponse{Node: id.Node, CsrDer: csr}
	if tlsCfg, err := mtls.ServerConfig(i.s.cfg.TLS); err == nil {
		_, resp.Enrolled = id.Certificate(tlsCfg.ClientCAs, time.Now())
	}
	return resp, nil
}

func (i identityServer) InstallNodeCertificate(ctx context.Context, req *agentv1.InstallNodeCertificateRequest) (*agentv1.InstallNodeCertificateResponse, error) {
	id, err := i.s.nodeIdentity()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	// The CA files are read again: after install renewed the CA, the
	// mounted Secret holds the new one.
	tlsCfg, err := mtls.ServerConfig(i.s.cfg.TLS)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "agent TLS: %v", err)
	}
	leaf, err := id.Install(req.GetCertificatePem(), tlsCfg.ClientCAs)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	i.s.log.Info("node certificate installed", "notAfter", leaf.NotAfter.UTC().Format(time.RFC3339))
	return &agentv1.InstallNodeCertificateResponse{Node: id.Node, NotAfter: leaf.NotAfter.UTC().Format(time.RFC3339)}, nil
}

// TLSConfig is the agent's server TLS: client certificates verified
// against the configured CA; the node's own certificate served once it is
// enrolled (picked at each handshake, so enrollment needs no restart),
// the configured (bootstrap) certificate until then.
func (s *Server) TLSConfig() (*tls.Config, error) {
	cfg, err := mtls.ServerConfig(s.cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("agent TLS: %w", err)
	}
	if s.cfg.StateDir == "" {
		// An agent run by hand without a state dir: it serves what it is
		// given and cannot be enrolled.
		return cfg, nil
	}
	id, err := s.nodeIdentity()
	if err != nil {
		return nil, err
	}
	bootstrap, roots := cfg.Certificates[0], cfg.ClientCAs
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c, ok := id.Certificate(roots, time.Now()); ok {
			return c, nil
		}
		return &bootstrap, nil
	}
	return cfg, nil
}

// recordSigner is the key and certificate that sign the records this
// agent writes: the node's enrolled one, else a certificate for this node
// in its TLS files (issued for it, as the lab's process agents have); nil
// when neither (records go unsigned, and a restore refuses them unless
// told otherwise). The shared bootstrap certificate never signs: it
// vouches for nothing.
func (s *Server) recordSigner() *signature.Signer {
	roots, err := s.cfg.TLS.Roots()
	if err != nil {
		return nil
	}
	now := time.Now()
	if id, err := s.nodeIdentity(); err == nil {
		if _, ok := id.Certificate(roots, now); ok {
			return &signature.Signer{Key: id.Signer, Chain: id.CertChain()}
		}
	}
	pair, err := s.cfg.TLS.KeyPair()
	if err != nil {
		return nil
	}
	sign, err := signature.FromKeyPair(pair)
	if err != nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil
	}
	if enrolled, err := pki.VerifyAgent([]*x509.Certificate{leaf}, roots, s.cfg.NodeName, now); err != nil || !enrolled {
		return nil
	}
	return sign
}

// recordPolicy is what this agent accepts of the records it reads: signed
// by a node or kubectl dr with a certificate of its TLS configuration's
// CA, or unsigned when the request says so (--allow-unsigned).
func (s *Server) recordPolicy(allowUnsigned bool) signature.Policy {
	return RecordPolicy(s.cfg.TLS, allowUnsigned)
}

// RecordPolicy is the policy of an agent with tls: its CA is the trust
// (none configured: nothing verifies, so only allowUnsigned reads).
func RecordPolicy(tls mtls.Files, allowUnsigned bool) signature.Policy {
	p := signature.Policy{AllowUnsigned: allowUnsigned}
	if roots, err := tls.Roots(); err == nil {
		p.Trust = &signature.Trust{Roots: roots, NodeOf: pki.CertNode}
	}
	return p
}
