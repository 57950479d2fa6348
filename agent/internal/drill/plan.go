package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
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
		snap := p.Snapshot
		if e.Records != nil {
			// Only a snapshot its node signed is rehearsed as the one a
			// recovery would trust.
			if snap, _, err = dbsnap.Verified(ctx, e.Store, *e.Records, p.Snapshot); err != nil {
				out.Error = err.Error()
				return out
			}
		}
		res, err = e.RunEtcd(ctx, r.ID, snap, false, nil)
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

// RepoFiles lists the file snapshots a scheduled drill rehearses: those of
// the backup sets, and each node's newest in the restic repository
// (scheduled file backups run outside sets), so that every node whose
// agent backs up files is covered, not only the nodes the sets name.
type RepoFiles struct {
	Sets  recoveryplan.SetFiles
	Files *files.Engine
}

// FileSnapshots implements recoveryplan.FileLister.
func (r RepoFiles) FileSnapshots(ctx context.Context) ([]recoveryplan.FileSnapshot, error) {
	out, err := r.Sets.FileSnapshots(ctx)
	if err != nil || r.Files == nil {
		return out, err
	}
	newest, err := r.Files.NewestPerNode(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the restic repository's snapshots: %w", err)
	}
	for node, s := range newest {
		if slices.ContainsFunc(out, func(f recoveryplan.FileSnapshot) bool { return f.Node == node && f.ID == s.ID }) {
			continue
		}
		out = append(out, recoveryplan.FileSnapshot{Node: node, ID: s.ID, Time: s.Time, Done: s.Time, Paths: s.Paths})
	}
	return out, nil
}

// NothingToRehearse says, for the report's notes, which layers the plan
// has no part of, and which nodes known to the store (by their datastore
// snapshots or file snapshots) have no file snapshot to rehearse.
func NothingToRehearse(in recoveryplan.Inputs, plan *recoveryplan.Plan) []string {
	var notes []string
	for _, l := range recoveryplan.Layers {
		if len(plan.Layer(l)) == 0 {
			notes = append(notes, fmt.Sprintf("nothing to rehearse: no %s part (the store holds nothing of that layer)", l))
		}
	}
	nodes := map[string]bool{}
	for _, s := range in.Snapshots {
		nodes[s.Node] = true
	}
	for _, set := range in.Sets {
		for _, f := range set.Files {
			nodes[f.Node] = true
		}
	}
	for _, p := range plan.Layer(recoveryplan.LayerFiles) {
		delete(nodes, p.Node)
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		if n != "" {
			notes = append(notes, fmt.Sprintf("nothing to rehearse: node %s has no file snapshot in the store", n))
		}
	}
	return notes
}
