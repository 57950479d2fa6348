package server

import (
	"context"
	"fmt"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/drill"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
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
			if rep.Interrupted {
				return fmt.Errorf("drill %s interrupted (the agent stopped or reloaded): saved as INTERRUPTED; the next scheduled one runs again", rep.ID)
			}
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
	// No plugin, so no snapshot key (unless an older config still puts
	// the private key on the node): what must be decrypted is checked as
	// far as it can be and reported not rehearsed.
	key, err := s.requestKey(nil)
	if err != nil {
		return nil, err
	}
	e, err := s.drillEngine(key)
	if err != nil {
		return nil, err
	}
	// drillEngine's policy: no unsigned record is rehearsed unattended.
	e.Unattended = true
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
	records := s.recordPolicy(false)
	sets, _, err := backupset.ListVerified(ctx, s.store, records)
	if err != nil {
		return nil, fmt.Errorf("drill %s: %w", id, err)
	}
	in, _, err := recoveryplan.Load(ctx, s.store, drill.RepoFiles{Sets: sets, Files: e.Files}, started, records)
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
	rep.Notes = drill.NothingToRehearse(in, plan)
	rep.Parts = e.RunPlan(ctx, drill.PlanRun{ID: id, Plan: plan, Checks: s.cfg.Drill.Checks, NoPostgres: s.noPostgres})
	// The agent stopping or reloading its config calls the drill off: its
	// parts failed for that, not for the backups, and the report says so.
	rep.Interrupted = ctx.Err() != nil
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
	if err := drillreport.Write(wctx, s.store, rep, page, s.recordSigner()); err != nil {
		return nil, err
	}
	return rep, nil
}
