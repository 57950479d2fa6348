package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
)

// checkPostgresBinary refuses a drill's postgres part before anything is
// restored when this node has no server binary for the base backup it
// would use (the DaemonSet's image has none): the plugin then asks another
// agent. What it cannot read here the part itself reports.
func (s *Server) checkPostgresBinary(ctx context.Context, source string, target time.Time) error {
	if s.store == nil {
		return nil
	}
	list, _, err := basebackup.List(ctx, s.store, source)
	if err != nil {
		return nil
	}
	base, err := basebackup.Pick(list, target)
	if err != nil {
		return nil
	}
	if _, err := pgbackup.ServerBinary(base.PGVersion); err != nil {
		return failure(codes.FailedPrecondition, agentv1.ReasonNoPostgres, "node %s cannot replay base backup %s of %s: %v", s.cfg.NodeName, base.ID, source, err)
	}
	return nil
}
