package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/drill"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
)

// drillJob is the unattended drill (drill.schedule): on the etcd leader's
// agent only, like the scheduled snapshot. It cannot reach the other
// agents, so it rehearses every layer of the latest recovery plan on this
// node: the datastore, each node's newest restic snapshot, each WAL source
// (when this node has the PostgreSQL server binaries), each bucket source;
// and keeps the same report kubectl dr drill keeps.
func (s *Server) drillJob() schedule.Job {
	return schedule.Job{
		Name:      "drill",
		Spec:      s.cfg.Drill.Schedule,
		ShouldRun: s.snapshotJob().ShouldRun,
		Run: func(ctx context.Context) error {
			rep, err := s.scheduledDrill(ctx, time.Now().UTC())
			if err != nil {
				return err
			}
			s.metrics.observeDrill(rep)
			if !rep.Passed {
				return fmt.Errorf("drill %s failed: %v", rep.ID, rep.Reasons)
			}
			s.log.Info("scheduled drill passed", "drill", rep.ID, "rto_seconds", rep.RTO.Seconds)
			return nil
		},
	}
}

// scheduledDrill runs one drill on this node and stores its report.
func (s *Server) scheduledDrill(ctx context.Context, started time.Time) (*drillreport.Report, error) {
	e, err := s.drillEngine()
	if err != nil {
		return nil, err
	}
	id := drillreport.NewID(started)
	for i := 1; ; i++ {
		exists, err := drillreport.Exists(ctx, s.store, id)
		if err != nil {
			return nil, err
		}
		if !exists {
			break
		}
		if i == 60 {
			return nil, fmt.Errorf("drill ids of %s and the next minute are taken in the store", drillreport.NewID(started))
		}
		id = drillreport.NewID(started.Add(time.Duration(i) * time.Second))
	}
	in, _, err := recoveryplan.Load(ctx, s.store, nil, started)
	if err != nil {
		return nil, fmt.Errorf("drill %s: %w", id, err)
	}
	plan, err := recoveryplan.Pick(in, recoveryplan.Target{Latest: true})
	if err != nil {
		return nil, fmt.Errorf("drill %s: %w", id, err)
	}
	rep := &drillreport.Report{ID: id, ClusterID: s.cfg.ClusterID, Runner: drillreport.ScheduleRunner(s.cfg.NodeName), Started: started,
		Backup: drillreport.Latest, Targets: drillreport.Targets{RTO: s.cfg.Drill.RTOTarget, RPO: s.cfg.Drill.RPOTarget, Source: "config"},
		Tools: map[string]string{"dr-agent on " + s.cfg.NodeName: buildinfo.Get().Version}}
	parts := make([]drillreport.Part, len(plan.Parts))
	var wg sync.WaitGroup
	for i, p := range plan.Parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = s.scheduledPart(ctx, e, id, p)
		}()
	}
	wg.Wait()
	for _, p := range parts {
		if p.Layer != "" {
			rep.Parts = append(rep.Parts, p)
		}
	}
	for _, c := range s.cfg.Drill.Checks {
		if c.HTTP != "" {
			rep.Notes = append(rep.Notes, fmt.Sprintf("not run: check %s (GET %s) needs the live platform; kubectl dr recover runs it", c.Name, c.HTTP))
		}
	}
	rep.Ended = time.Now().UTC()
	rep.Judge(agentconfig.Target(rep.Targets.RTO), agentconfig.Target(rep.Targets.RPO))
	page, err := drillreport.HTML(rep)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := drillreport.Write(wctx, s.store, rep, page); err != nil {
		return nil, err
	}
	return rep, nil
}

// scheduledPart rehearses one part of the plan on this node.
func (s *Server) scheduledPart(ctx context.Context, e *drill.Engine, id string, p recoveryplan.Part) drillreport.Part {
	out := drillreport.Part{Layer: p.Layer, Name: p.What, Node: s.cfg.NodeName}
	if p.Layer == recoveryplan.LayerFiles {
		out.Name = p.Node
	}
	if p.Missing {
		out.Error = "nothing to restore: " + p.Why
		return out
	}
	var (
		res *drill.Result
		err error
	)
	switch p.Layer {
	case recoveryplan.LayerEtcd:
		res, err = e.RunEtcd(ctx, id, p.Snapshot, false, nil)
	case recoveryplan.LayerFiles:
		// The node's newest snapshot, restored here for it.
		res, err = e.RunFiles(ctx, id, drill.FilesPart{Node: p.Node}, false, nil)
	case recoveryplan.LayerPostgres:
		if why := s.noPostgres(ctx, p.What, p.PGTime); why != "" {
			out.NotRun = fmt.Sprintf("no PostgreSQL server binaries on %s (%s)", s.cfg.NodeName, why)
			return out
		}
		req := drill.PostgresPart{Source: p.What, Target: p.PGTime}
		for _, c := range s.cfg.Drill.Checks {
			if c.Query != "" && c.Postgres == p.What {
				req.Checks = append(req.Checks, pgbackup.Check{Name: c.Name, Database: c.Database, Query: c.Query, Expect: c.Expect, Timeout: c.CheckTimeout()})
			}
		}
		res, err = e.RunPostgres(ctx, id, req, false, nil)
	case recoveryplan.LayerBucket:
		res, err = e.RunBucket(ctx, id, drill.BucketPart{Source: p.What, At: p.BucketTo}, false, nil)
	default:
		return drillreport.Part{}
	}
	if err != nil {
		out.Error = err.Error()
		return out
	}
	return drillPart(res)
}

// drillPart is an engine result as the report keeps it.
func drillPart(r *drill.Result) drillreport.Part {
	p := drillreport.Part{Layer: r.Layer, Name: r.Name, Node: r.Node, OK: r.OK, Problems: r.Problems, Facts: r.Facts, Counts: r.Counts,
		BytesRestored: r.BytesRestored, FilesRestored: r.FilesRestored, ScratchDir: r.ScratchDir}
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
