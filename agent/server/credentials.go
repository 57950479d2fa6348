package server

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// requestStore is the store a deleting request works in: the node's own,
// or, when the request brings the plugin's delete-capable credentials
// (nodes holding put/get-only ones), the same store opened with those,
// for this request only and never written anywhere.
func (s *Server) requestStore(c *agentv1.StoreCredentials) (objstore.Store, error) {
	if c == nil || c.AccessKey == "" {
		return s.store, nil
	}
	if s.store == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
	}
	cfg := s.requestStoreConfig(c)
	store, err := objstore.Open(cfg)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "open the store with the request's credentials: %v", err)
	}
	return store.Sub(s.cfg.ClusterID), nil
}

func (s *Server) requestStoreConfig(c *agentv1.StoreCredentials) objstore.Config {
	cfg := s.cfg.Store
	cfg.AccessKey, cfg.SecretKey = c.AccessKey, c.SecretKey
	cfg.AccessKeyFile, cfg.SecretKeyFile = "", ""
	cfg.Scoped = false
	return cfg
}

// requestFiles is the files engine for a deleting request: restic run
// with the request's credentials when it brings some (restic forget and
// prune delete), else the node's engine.
func (s *Server) requestFiles(e *files.Engine, c *agentv1.StoreCredentials, store objstore.Store) (*files.Engine, error) {
	if c == nil || c.AccessKey == "" || e == nil {
		return e, nil
	}
	cfg := *s.cfg
	cfg.Store = s.requestStoreConfig(c)
	fe, _, err := s.newFiles(&cfg, store)
	if err != nil {
		return nil, fmt.Errorf("restic with the request's credentials: %w", err)
	}
	if fe == nil {
		return e, nil
	}
	return fe, nil
}
