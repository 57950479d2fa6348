package restoreplan

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// A recovery onto new hosts restores the datastore and the volumes' files
// at once; k3s, once started, starts the pods, which must not find their
// volumes half restored. Every server's plan then has the step
// wait-layers-restored before its start (a server that rejoins: before
// it waits for the reset server, so that it never waits on a server that
// is not to start): it waits for the coordinator's word (StartGate) that
// every other layer is back. A layer that failed ends the plan there: the
// datastore is restored and in place, k3s is not started (the operator
// restores the layer, then starts k3s).

const (
	StepWaitLayers = "wait-layers-restored"
	// StartHoldLimit bounds the wait before the start. A plan that hears
	// nothing (the plugin died, and with it the file restores it drove)
	// ends there without starting k3s.
	StartHoldLimit = 2 * time.Hour
)

// HoldStart puts the step wait-layers-restored before the start step (a
// rejoining server's wait for the reset server) of a plan that has not
// started; holding a held plan changes nothing.
func (p *Plan) HoldStart() error {
	if p.Started {
		return fmt.Errorf("plan %s has started on %s: its start is held before it starts", p.ID, p.Node)
	}
	names := p.StepNames()
	if slices.Contains(names, StepWaitLayers) {
		return nil
	}
	i := slices.Index(names, StepWaitResetServer)
	if i < 0 {
		i = slices.Index(names, StepStart)
	}
	if i < 0 {
		return fmt.Errorf("plan %s on %s has no %s step to hold", p.ID, p.Node, StepStart)
	}
	p.Steps = slices.Insert(p.Steps, i, Step{Name: StepWaitLayers, State: Pending})
	return nil
}

// HoldStart puts the start hold into prepared plan id (Plan.HoldStart).
func (ps Plans) HoldStart(id string) (*Plan, error) {
	unlock, err := ps.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := ps.Load(id)
	if err != nil {
		return nil, err
	}
	if err := p.HoldStart(); err != nil {
		return nil, err
	}
	return p, ps.Save(p)
}

// ReleaseStart lets plan id start (start true) or ends it before its
// start with reason. It returns the word that holds: the first said.
func (g *Gate) ReleaseStart(id string, start bool, reason string) (held bool, heldReason string) {
	w := g.say(id, word{rollBack: !start, reason: reason})
	return !w.rollBack, w.reason
}

// NotStarted is how a plan held before its start ended when a layer it
// waited on failed.
type NotStarted struct{ Reason string }

func (e NotStarted) Error() string {
	return "not started: " + e.Reason
}

// waitLayers is the step wait-layers-restored.
func (r *Runner) waitLayers(ctx context.Context, p *Plan) error {
	limit := r.StartHoldLimit
	if limit == 0 {
		limit = StartHoldLimit
	}
	w, err := r.StartGate.wait(ctx, p.ID, limit)
	if err != nil {
		return NotStarted{Reason: err.Error()}
	}
	if w.rollBack {
		return NotStarted{Reason: w.reason}
	}
	return nil
}
