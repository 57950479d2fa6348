package etcdrestore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// The start hold of a recovery (restorebarrier.proto): every server's
// plan waits in wait-layers-restored before k3s starts (a rejoining
// server before it waits for the reset server) until the plugin says the
// other layers are back, or that one failed: then no server starts k3s,
// and no pod starts on volumes that are not restored.

const stepWaitLayers = "wait-layers-restored"

// holdStart puts the start hold into every prepared part; an agent that
// cannot (too old) fails the recovery before anything stops.
func holdStart(ctx context.Context, servers []*agentclient.Node, planID string) error {
	return holdEach(servers, "hold k3s's start until the volumes' files are restored", "hold the part before its start", func(n *agentclient.Node) error {
		_, err := n.Conn.Barrier.HoldStartRestorePlan(ctx, &agentv1.HoldStartRestorePlanRequest{PlanId: planID})
		return err
	})
}

// startWatch learns from the servers' steps when each reached its start
// hold, or its part ended.
type startWatch struct {
	mu      sync.Mutex
	held    map[string]bool
	done    map[string]bool
	changed chan struct{} // closed and replaced at every change
}

func newStartWatch() *startWatch {
	return &startWatch{held: map[string]bool{}, done: map[string]bool{}, changed: make(chan struct{})}
}

// set records a change under the lock and wakes every waiter.
func (w *startWatch) set(m map[string]bool, node string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m[node] = true
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *startWatch) step(node string, st *agentv1.RestoreStep) {
	if st.Name == stepWaitLayers && st.State == agentv1.RestoreStep_STATE_RUNNING {
		w.set(w.held, node)
	}
}

func (w *startWatch) ended(node string) { w.set(w.done, node) }

// wait blocks until node's part is at its start hold (true) or ended
// without reaching it (false).
func (w *startWatch) wait(ctx context.Context, node string) bool {
	for {
		w.mu.Lock()
		held, done, changed := w.held[node], w.done[node], w.changed
		w.mu.Unlock()
		switch {
		case held:
			return true
		case done:
			return false
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// releaseStart waits for StartAfter, then tells every server held before
// its start whether to start. It goes on when the plugin is interrupted,
// so that the servers end their wait (without starting).
// It returns StartAfter's error: why k3s was not started.
func (d *Datastore) releaseStart(ctx context.Context, servers []*agentclient.Node, planID string, starts *startWatch) error {
	werr := d.StartAfter(ctx)
	req := &agentv1.ReleaseStartRestorePlanRequest{PlanId: planID, Start: werr == nil}
	if werr != nil {
		req.Reason = werr.Error()
		fmt.Fprintf(d.ErrOut, "plan %s: k3s is not started: %v\n", planID, werr)
	} else {
		fmt.Fprintf(d.ErrOut, "plan %s: every other layer is restored; k3s starts\n", planID)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !starts.wait(rctx, n.Node) && ctx.Err() == nil {
				// Its part ended before the hold: nothing to tell.
				// (Interrupted, the plugin tells it anyway, once.)
				return
			}
			deadline := time.Now().Add(time.Minute)
			for {
				_, err := n.Conn.Barrier.ReleaseStartRestorePlan(rctx, &agentv1.ReleaseStartRestorePlanRequest{PlanId: req.PlanId, Start: req.Start, Reason: req.Reason})
				if err == nil {
					return
				}
				if status.Code(err) == codes.FailedPrecondition || time.Now().After(deadline) || ctx.Err() != nil {
					fmt.Fprintf(d.ErrOut, "warning: node %s: %s\n", n.Node, agentclient.Explain(err))
					return
				}
				select {
				case <-rctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}()
	}
	wg.Wait()
	return werr
}

// NotStartedError is how a datastore restore held before k3s's start
// ends when StartAfter failed and every server ended at the hold: the
// datastore is restored and in place, k3s was started nowhere.
type NotStartedError struct {
	PlanID string
	// Reset is the server to start first.
	Reset string
	// Reason is StartAfter's error.
	Reason error
}

func (e *NotStartedError) Error() string {
	return fmt.Sprintf("the datastore is restored and in place on every server (plan %s), and k3s was not started, so that no pod starts on volumes that are not back (%v): once they are, start k3s on %s and then on the others (`kubectl dr etcd restore --status` says so on each server)", e.PlanID, e.Reason, e.Reset)
}

func (e *NotStartedError) Unwrap() error { return e.Reason }

// heldOnly reports whether every part that failed ended at the start
// hold, and none failed elsewhere.
func heldOnly(outcomes []*outcome) bool {
	held := false
	for _, oc := range outcomes {
		if oc.err == nil {
			continue
		}
		for _, st := range oc.steps {
			if st.State == agentv1.RestoreStep_STATE_FAILED && st.Name != stepWaitLayers {
				return false
			}
		}
		if st := oc.steps[stepWaitLayers]; st == nil || st.State != agentv1.RestoreStep_STATE_FAILED {
			return false
		}
		held = true
	}
	return held
}
