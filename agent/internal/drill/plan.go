package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
)

// PlanRun is a whole recovery plan rehearsed on this node, as a scheduled
// drill does: it cannot reach the other agents.
type PlanRun struct {
	ID     string
	Plan   *recoveryplan.Plan
	Checks []agentconfig.Check
	// NoPostgres says why this node cannot replay a WAL source's base
	// backup for target (no server binaries), empty when it can.
	NoPostgres func(ctx context.Context, source string, target time.Time) string
}

// RunPlan rehearses every part of the plan on this node, in parallel, and
// returns them as the report keeps them, in the plan's order: the
// datastore, each node's newest restic snapshot restored here for it,
// each WAL source (not run without PostgreSQL here), each bucket source.
func (e *Engine) RunPlan(ctx context.Context, r PlanRun) []drillreport.Part {
	parts := make([]drillreport.Part, len(r.Plan.Parts))
	var wg sync.WaitGroup
	for i, p := range r.Plan.Parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = e.planPart(ctx, r, p)
		}()
	}
	wg.Wait()
	out := parts[:0]
	for _, p := range parts {
		if p.Layer != "" {
			out = append(out, p)
		}
	}
	return out
}

func (e *Engine) planPart(ctx context.Context, r PlanRun, p recoveryplan.Part) drillreport.Part {
	out := drillreport.Part{Layer: p.Layer, Name: p.What, Node: e.Node}
	if p.Layer == recoveryplan.LayerFiles {
		out.Name = p.Node
	}
	if p.Missing {
		out.Error = "nothing to restore: " + p.Why
		return out
	}
	var (
		res *Result
		err error
	)
	switch p.Layer {
	case recoveryplan.LayerEtcd:
		res, err = e.RunEtcd(ctx, r.ID, p.Snapshot, false, nil)
	case recoveryplan.LayerFiles:
		// The node's newest snapshot, restored here for it.
		res, err = e.RunFiles(ctx, r.ID, FilesPart{Node: p.Node}, false, nil)
	case recoveryplan.LayerPostgres:
		if r.NoPostgres != nil {
			if why := r.NoPostgres(ctx, p.What, p.PGTime); why != "" {
				out.NotRun = fmt.Sprintf("no PostgreSQL server binaries on %s (%s)", e.Node, why)
				return out
			}
		}
		req := PostgresPart{Source: p.What, Target: p.PGTime}
		for _, c := range r.Checks {
			if c.Query != "" && c.Postgres == p.What {
				req.Checks = append(req.Checks, pgbackup.Check{Name: c.Name, Database: c.Database, Query: c.Query, Expect: c.Expect, Timeout: c.CheckTimeout()})
			}
		}
		res, err = e.RunPostgres(ctx, r.ID, req, false, nil)
	case recoveryplan.LayerBucket:
		res, err = e.RunBucket(ctx, r.ID, BucketPart{Source: p.What, At: p.BucketTo}, false, nil)
	default:
		return drillreport.Part{}
	}
	if err != nil {
		out.Error = err.Error()
		return out
	}
	return ReportPart(res)
}

// ReportPart is a result as the drill's report keeps it.
func ReportPart(r *Result) drillreport.Part {
	p := drillreport.Part{Layer: r.Layer, Name: r.Name, Node: r.Node, OK: r.OK, Problems: r.Problems, Facts: r.Facts, Counts: r.Counts,
		BytesRestored: r.BytesRestored, FilesRestored: r.FilesRestored, ScratchDir: r.ScratchDir, NotRun: r.NotRun}
	if !r.RecoveryPoint.IsZero() {
		t := r.RecoveryPoint
		p.RecoveryPoint = &t
	}
	for _, st := range r.Steps {
		p.Steps = append(p.Steps, drillreport.Step{Name: st.Name, Start: st.Start, End: st.End, OK: st.OK, Detail: st.Detail, Error: st.Error, Restore: st.Restore})
	}
	for _, c := range r.Checks {
		p.Checks = append(p.Checks, drillreport.Check{Name: c.Name, Query: c.Query, Expect: c.Expect, Got: c.Got, OK: c.OK, Error: c.Error, DurationMS: c.Duration.Milliseconds()})
	}
	return p
}
