package restoreplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// A restore across several servers has a barrier: every member stops
// before any member's data dir is touched. A plan without one (a single
// server) has its point of no return right after its stop. The plan of each server then
// has the step wait-all-stopped after stop, where it waits for the
// coordinator's word (Gate): go on, or roll back. Until a plan has passed
// its barrier nothing of its member's data has changed, so a plan that
// fails or is called off before it is rolled back: its member is started
// again on its own data dir (the step roll-back). Past the barrier there
// is no rolling back by the runner (the point of no return).

// Steps of the barrier.
const (
	StepBarrier  = "wait-all-stopped"
	StepRollBack = "roll-back"
	// BarrierLimit bounds the wait at the barrier. A plan that hears
	// nothing (the plugin died) rolls back after it. The plugin decides
	// well before (BarrierDecideLimit after it started the plans).
	BarrierLimit = 6 * time.Minute
)

// ErrPastBarrier means the plan has passed its barrier (or never had
// one): it is not rolled back.
var ErrPastBarrier = errors.New("the plan is past its barrier")

// Hold puts the barrier step after the stop step of a plan that has not
// started; holding a held plan changes nothing.
func (p *Plan) Hold() error {
	if p.Started {
		return fmt.Errorf("plan %s has started on %s: a barrier is added before it starts", p.ID, p.Node)
	}
	names := p.StepNames()
	if slices.Contains(names, StepBarrier) {
		return nil
	}
	i := slices.Index(names, StepStop)
	if i < 0 {
		return fmt.Errorf("plan %s on %s has no %s step to hold after", p.ID, p.Node, StepStop)
	}
	p.Steps = slices.Insert(p.Steps, i+1, Step{Name: StepBarrier, State: Pending})
	return nil
}

// PastBarrier reports whether the plan has passed its point of no
// return: its barrier, or for a plan without one (a single server) its
// stop. Before it, nothing of the member's data has changed.
func (p *Plan) PastBarrier() bool {
	last := StepStop
	if slices.Contains(p.StepNames(), StepBarrier) {
		last = StepBarrier
	}
	for _, s := range p.Steps {
		if s.Name == last {
			return s.State == Done
		}
	}
	return true
}

// word is what the coordinator said of a plan.
type word struct {
	rollBack bool
	reason   string
}

// Gate carries the coordinator's word to the plans waiting at their
// barrier. The first word said of a plan is the one that holds.
type Gate struct {
	mu    sync.Mutex
	words map[string]word
	wake  map[string]chan struct{}
}

// Continue lets plan id go on past its barrier. It returns the reason
// when the plan was told to roll back before.
func (g *Gate) Continue(id string) (rolledBack bool, reason string) {
	w := g.say(id, word{})
	return w.rollBack, w.reason
}

// RollBack calls plan id off before its barrier. It reports false when
// the plan was told to go on before.
func (g *Gate) RollBack(id, reason string) bool {
	return g.say(id, word{rollBack: true, reason: reason}).rollBack
}

func (g *Gate) say(id string, w word) word {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.words == nil {
		g.words, g.wake = map[string]word{}, map[string]chan struct{}{}
	}
	if said, ok := g.words[id]; ok {
		return said
	}
	g.words[id] = w
	if ch, ok := g.wake[id]; ok {
		close(ch)
		delete(g.wake, id)
	}
	return w
}

// said is the word on plan id, if any.
func (g *Gate) said(id string) (word, bool) {
	if g == nil {
		return word{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	w, ok := g.words[id]
	return w, ok
}

// wait blocks until the coordinator's word on plan id, or limit.
func (g *Gate) wait(ctx context.Context, id string, limit time.Duration) (word, error) {
	if g == nil {
		return word{}, errors.New("nothing here takes the coordinator's word (no gate)")
	}
	g.mu.Lock()
	if g.words == nil {
		g.words, g.wake = map[string]word{}, map[string]chan struct{}{}
	}
	if w, ok := g.words[id]; ok {
		g.mu.Unlock()
		return w, nil
	}
	ch, ok := g.wake[id]
	if !ok {
		ch = make(chan struct{})
		g.wake[id] = ch
	}
	g.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-ch:
		w, _ := g.said(id)
		return w, nil
	case <-timer.C:
		return word{}, fmt.Errorf("no word from the coordinator within %s (was the plugin stopped?)", limit)
	case <-ctx.Done():
		return word{}, ctx.Err()
	}
}

// errRollBack ends a plan before its barrier.
type errRollBack struct{ reason string }

func (e errRollBack) Error() string { return "called off before every member stopped: " + e.reason }

// barrier is the step wait-all-stopped.
func (r *Runner) barrier(ctx context.Context, p *Plan) error {
	limit := r.BarrierLimit
	if limit == 0 {
		limit = BarrierLimit
	}
	w, err := r.Gate.wait(ctx, p.ID, limit)
	if err != nil {
		return errRollBack{reason: err.Error()}
	}
	if w.rollBack {
		return errRollBack{reason: w.reason}
	}
	return nil
}

// rollBack puts the member back after its plan failed, or was called off,
// before the barrier: its data dir was not touched, so the member is
// started again on it (unless it still runs: a stop that failed may have
// left it running) and waited on until healthy. A member whose stop never
// began is left as it is. The staging dir this plan built is removed.
func (r *Runner) rollBack(ctx context.Context, p *Plan, reason string) error {
	var stop Step
	for _, s := range p.Steps {
		if s.Name == StepStop {
			stop = s
		}
	}
	p.update(func() { p.RollBackReason = reason })
	removeStaging(p)
	if stop.State == Pending || stop.State == "" {
		return r.Plans.Save(p)
	}
	p.update(func() { p.Steps = append(p.Steps, Step{Name: StepRollBack, State: Pending}) })
	s := &p.Steps[len(p.Steps)-1]
	return r.runStep(ctx, p, s, func() error {
		detail := fmt.Sprintf("started again on its data dir from before the restore (%s)", p.Member.DataDir)
		if r.Running != nil && r.Running(ctx) {
			detail = fmt.Sprintf("the member still ran on its data dir from before the restore (%s), not started again", p.Member.DataDir)
		} else if err := r.Host.Start(ctx); err != nil {
			return err
		}
		p.update(func() { s.Detail = detail })
		if r.Healthy == nil {
			return nil
		}
		return poll(ctx, healthyLimit, "the member is not healthy after the roll-back", r.Healthy)
	})
}

// removeStaging removes the new data dir this plan built, if it is there.
func removeStaging(p *Plan) {
	if p.Staging == "" {
		return
	}
	if b, err := ReadBuilt(p.Staging); err == nil && b.Plan == p.ID {
		os.Remove(builtPath(p.Staging))
		os.RemoveAll(p.Staging)
	}
}
