package server

import (
	"context"
	"errors"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// restoreBarrier serves RestoreBarrierService: the barrier between every
// member stopped and any data dir touched (restoreplan's barrier.go).
type restoreBarrier struct {
	agentv1.UnimplementedRestoreBarrierServiceServer
	s *Server
}

// continueWait bounds how long ContinueRestorePlan waits for the plan to
// record that it passed the barrier.
const continueWait = 30 * time.Second

func (b restoreBarrier) load(id string) (*restoreplan.Plan, error) {
	if err := restoreplan.ValidID(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p, err := b.s.plans().Load(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "no restore plan %q on %s", id, b.s.cfg.NodeName)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return p, nil
}

func (b restoreBarrier) HoldRestorePlan(_ context.Context, req *agentv1.HoldRestorePlanRequest) (*agentv1.HoldRestorePlanResponse, error) {
	if _, err := b.load(req.GetPlanId()); err != nil {
		return nil, err
	}
	p, err := b.s.plans().Hold(req.GetPlanId())
	if err != nil {
		return nil, planStatus(err)
	}
	return &agentv1.HoldRestorePlanResponse{Steps: p.StepNames()}, nil
}

// barrierStep is the state of the plan's barrier step, "" when it has none.
func barrierStep(p *restoreplan.Plan) string {
	for _, s := range p.Steps {
		if s.Name == restoreplan.StepBarrier {
			return s.State
		}
	}
	return ""
}

func (b restoreBarrier) ContinueRestorePlan(ctx context.Context, req *agentv1.ContinueRestorePlanRequest) (*agentv1.ContinueRestorePlanResponse, error) {
	id := req.GetPlanId()
	events, cancel := b.s.restores.subscribe()
	defer cancel()
	p, err := b.load(id)
	if err != nil {
		return nil, err
	}
	switch barrierStep(p) {
	case "":
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s has no barrier", id, b.s.cfg.NodeName)
	case restoreplan.Pending:
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s has not reached its barrier: its member has not stopped yet", id, b.s.cfg.NodeName)
	}
	if rolledBack, reason := b.s.restores.gate.Continue(id); rolledBack {
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s was called off before the barrier (%s): it rolls back", id, b.s.cfg.NodeName, reason)
	}
	ctx, stop := context.WithTimeout(ctx, continueWait)
	defer stop()
	for {
		if p.PastBarrier() {
			return &agentv1.ContinueRestorePlanResponse{}, nil
		}
		if p.RollBackReason != "" || barrierStep(p) == restoreplan.Failed {
			return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s rolled back before the barrier: %s", id, b.s.cfg.NodeName, p.RollBackReason)
		}
		select {
		case <-events:
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "plan %s on %s was let go on but did not record passing its barrier within %s: ask again", id, b.s.cfg.NodeName, continueWait)
		}
		if p, err = b.load(id); err != nil {
			return nil, err
		}
	}
}

func (b restoreBarrier) RollBackRestorePlan(_ context.Context, req *agentv1.RollBackRestorePlanRequest) (*agentv1.RollBackRestorePlanResponse, error) {
	id := req.GetPlanId()
	p, err := b.load(id)
	if err != nil {
		return nil, err
	}
	switch barrierStep(p) {
	case "":
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s has no barrier: it is not rolled back", id, b.s.cfg.NodeName)
	case restoreplan.Done:
		return nil, status.Errorf(codes.FailedPrecondition, "%v: plan %s on %s is not rolled back", restoreplan.ErrPastBarrier, id, b.s.cfg.NodeName)
	}
	if !b.s.restores.gate.RollBack(id, req.GetReason()) {
		return nil, status.Errorf(codes.FailedPrecondition, "%v: plan %s on %s was let go on already; it is not rolled back", restoreplan.ErrPastBarrier, id, b.s.cfg.NodeName)
	}
	return &agentv1.RollBackRestorePlanResponse{}, nil
}

// stepState is the state of the plan's step name, "" when it has none.
func stepState(p *restoreplan.Plan, name string) string {
	for _, s := range p.Steps {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func (b restoreBarrier) HoldStartRestorePlan(_ context.Context, req *agentv1.HoldStartRestorePlanRequest) (*agentv1.HoldStartRestorePlanResponse, error) {
	if _, err := b.load(req.GetPlanId()); err != nil {
		return nil, err
	}
	p, err := b.s.plans().HoldStart(req.GetPlanId())
	if err != nil {
		return nil, planStatus(err)
	}
	return &agentv1.HoldStartRestorePlanResponse{Steps: p.StepNames()}, nil
}

func (b restoreBarrier) ReleaseStartRestorePlan(ctx context.Context, req *agentv1.ReleaseStartRestorePlanRequest) (*agentv1.ReleaseStartRestorePlanResponse, error) {
	id := req.GetPlanId()
	if !req.GetStart() && req.GetReason() == "" {
		return nil, status.Error(codes.InvalidArgument, "a plan that is not to start needs a reason")
	}
	events, cancel := b.s.restores.subscribe()
	defer cancel()
	p, err := b.load(id)
	if err != nil {
		return nil, err
	}
	if stepState(p, restoreplan.StepWaitLayers) == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s is not held before its start", id, b.s.cfg.NodeName)
	}
	if start, reason := b.s.restores.startGate.ReleaseStart(id, req.GetStart(), req.GetReason()); start != req.GetStart() {
		if start {
			return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s was let start already", id, b.s.cfg.NodeName)
		}
		return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s was told not to start already (%s)", id, b.s.cfg.NodeName, reason)
	}
	ctx, stop := context.WithTimeout(ctx, continueWait)
	defer stop()
	for {
		switch stepState(p, restoreplan.StepWaitLayers) {
		case restoreplan.Done, restoreplan.Failed:
			return &agentv1.ReleaseStartRestorePlanResponse{}, nil
		}
		if p.FailedStep() != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "plan %s on %s failed before its start was held: %s", id, b.s.cfg.NodeName, p.Hint())
		}
		select {
		case <-events:
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "plan %s on %s was told but did not record it within %s: ask again", id, b.s.cfg.NodeName, continueWait)
		}
		if p, err = b.load(id); err != nil {
			return nil, err
		}
	}
}
