package server

import (
	"context"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/healthcheck"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/preflight"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// recoverServer serves RecoverService: what a restore onto this node must
// pass before anything stops.
type recoverServer struct {
	agentv1.UnimplementedRecoverServiceServer
	s *Server
}

// Preflight fetches and verifies the snapshot where a restore here takes
// it from, reads the files kept with it (for a new host) and runs the
// checks (agent/internal/preflight). Failed checks are rows; only a
// snapshot that cannot be found or fetched is an error.
func (r recoverServer) Preflight(ctx context.Context, req *agentv1.PreflightRequest) (*agentv1.PreflightResponse, error) {
	s := r.s
	id, err := s.requestKey(req.GetSnapshotIdentity())
	if err != nil {
		return nil, err
	}
	snap, path, err := s.fetchForRestore(ctx, req.GetSnapshot(), id, func(string, string) {})
	if err != nil {
		return nil, err
	}
	in := preflight.Input{
		Snapshot: snap, Path: path, NewHost: req.GetNewHost(),
		DataDir: s.cfg.DataDir, Flavor: s.cfg.Restore.Flavor,
		K3sBinary: s.cfg.Restore.K3sBinary, K3sPrefix: restoreplan.NewK3sReset(s.cfg.Restore.K3sBinary, s.cfg.DataDir).Prefix,
	}
	if in.NewHost {
		in.Escrow, in.EscrowErr = escrow(ctx, s, snap, id)
	}
	resp := &agentv1.PreflightResponse{Node: s.cfg.NodeName, Snapshot: snap.Name, SnapshotSha256: snap.SHA256}
	for _, row := range preflight.Run(ctx, in) {
		resp.Checks = append(resp.Checks, &agentv1.PreflightCheck{Name: row.Check, State: row.State, Detail: row.Detail, Fix: row.Fix})
	}
	return resp, nil
}

// escrow reads the bootstrap files kept with the snapshot.
func escrow(ctx context.Context, s *Server, snap *dbsnap.Snapshot, id age.Identity) (map[string][]byte, error) {
	if id == nil {
		return nil, restoreplan.ErrNoKey
	}
	return dbsnap.FetchBootstrap(ctx, s.store, snap, id)
}

// RunChecks runs the health checks of this node's config that belong
// here: the SQL checks of the WAL sources it ships (through the source's
// connection) and, asked for, the HTTP checks.
func (r recoverServer) RunChecks(ctx context.Context, req *agentv1.RunChecksRequest) (*agentv1.RunChecksResponse, error) {
	cfg := r.s.cfg
	resp := &agentv1.RunChecksResponse{Node: cfg.NodeName}
	conns := map[string]string{}
	for _, src := range cfg.WAL.Sources {
		conns[src.Name] = src.Connection
	}
	for _, c := range cfg.Drill.Checks {
		var res healthcheck.Result
		switch {
		case c.Query != "":
			conn, ok := conns[c.Postgres]
			if !ok {
				continue
			}
			if conn == "" {
				res = healthcheck.Result{Name: c.Name, Query: c.Query, Expect: c.Expect, Error: "wal source " + c.Postgres + " has no connection in this node's config: the check cannot reach its database"}
			} else {
				res = healthcheck.SQL(ctx, conn, c)
			}
		case c.HTTP != "" && req.GetHttp():
			res = healthcheck.HTTP(ctx, nil, c)
		default:
			continue
		}
		resp.Checks = append(resp.Checks, &agentv1.DrillCheckResult{Name: res.Name, Query: res.Query, Expect: res.Expect, Got: res.Got, Ok: res.OK, Error: res.Error, DurationMs: res.Duration.Milliseconds()})
	}
	return resp, nil
}
