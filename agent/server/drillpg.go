package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
)

// checkPostgresBinary refuses a drill's postgres part before anything is
// restored when this node has no server binary for the base backup it
// would use (the DaemonSet's image has none): the plugin then asks another
// agent. What it cannot read here the part itself reports.
func (s *Server) checkPostgresBinary(ctx context.Context, source string, target time.Time) error {
	if why := s.noPostgres(ctx, source, target); why != "" {
		return failure(codes.FailedPrecondition, agentv1.ReasonNoPostgres, "%s", why)
	}
	return nil
}

// noPostgres says why this node cannot replay source's base backup for
// target; empty when it can, or when that cannot be told yet.
func (s *Server) noPostgres(ctx context.Context, source string, target time.Time) string {
	if s.store == nil {
		return ""
	}
	plan, err := pgbackup.PlanRestore(ctx, s.store, source, pgtarget.Target{Kind: pgtarget.Time, Time: target}, nil)
	if err != nil {
		return ""
	}
	base := plan.Base
	if _, err := pgbackup.ServerBinary(base.PGVersion); err != nil {
		return fmt.Sprintf("node %s cannot replay base backup %s of %s: %v", s.cfg.NodeName, base.ID, source, err)
	}
	return ""
}
