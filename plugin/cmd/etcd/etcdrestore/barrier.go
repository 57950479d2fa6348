package etcdrestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// The barrier of a restore across several servers (restorebarrier.proto):
// every member stops before any data dir changes. Each agent's plan waits
// in wait-all-stopped; the plugin lets them all go on once every one is
// there, or rolls every one back when one fails first.

const (
	// Step names the agents use for the barrier and its roll-back.
	stepStop     = "stop"
	stepBarrier  = "wait-all-stopped"
	stepRollBack = "roll-back"
	// barrierDecide bounds the wait for every member to reach the
	// barrier (each stop command has 5 minutes); the agents wait 6
	// minutes at it before they roll back on their own.
	barrierDecide = 5*time.Minute + 30*time.Second
)

// onEach calls fn for every server (i its index) at once and returns each one's error
// (nil when it went well), in the servers' order.
func onEach(servers []*agentclient.Node, fn func(i int, n *agentclient.Node) error) []error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, n := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, n)
		}()
	}
	wg.Wait()
	return errs
}

// holdEach asks every server for one hold of its prepared part (call);
// an agent that cannot (too old: Unimplemented) is told to upgrade with
// cannot, saying what it cannot do; every failure is in the error.
func holdEach(servers []*agentclient.Node, cannot, what string, call func(n *agentclient.Node) error) error {
	return errors.Join(onEach(servers, func(_ int, n *agentclient.Node) error {
		err := call(n)
		switch {
		case status.Code(err) == codes.Unimplemented:
			return fmt.Errorf("node %s: its agent cannot %s: upgrade the agents", n.Node, cannot)
		case err != nil:
			return fmt.Errorf("node %s: %s: %s", n.Node, what, agentclient.Explain(err))
		}
		return nil
	})...)
}

// hold puts the barrier into every prepared part; an agent that cannot
// (too old) fails the restore before anything stops.
func hold(ctx context.Context, servers []*agentclient.Node, planID string) error {
	return holdEach(servers, "hold its member until every member stopped", "hold the part at the barrier", func(n *agentclient.Node) error {
		_, err := n.Conn.Barrier.HoldRestorePlan(ctx, &agentv1.HoldRestorePlanRequest{PlanId: planID})
		return err
	})
}

// discardAll drops the prepared part of plan planID on every server, so
// that none holds its node.
func discardAll(ctx context.Context, servers []*agentclient.Node, planID string) error {
	return errors.Join(onEach(servers, func(_ int, n *agentclient.Node) error {
		if _, err := n.Conn.DiscardRestorePlan(ctx, &agentv1.DiscardRestorePlanRequest{PlanId: planID}); err != nil {
			return fmt.Errorf("node %s: discard the prepared part: %s", n.Node, agentclient.Explain(err))
		}
		return nil
	})...)
}

// barrierWatch learns from the members' steps when each reaches the
// barrier or fails before it.
type barrierWatch struct {
	mu      sync.Mutex
	arrived map[string]bool
	failed  string
	changed chan struct{}
}

func newBarrierWatch() *barrierWatch {
	return &barrierWatch{arrived: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (b *barrierWatch) poke() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// step is told every step event of node.
func (b *barrierWatch) step(node string, st *agentv1.RestoreStep) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case st.Name == stepBarrier && st.State == agentv1.RestoreStep_STATE_RUNNING:
		b.arrived[node] = true
	case st.State == agentv1.RestoreStep_STATE_FAILED && !b.arrived[node] && b.failed == "":
		// The error itself is on the node's own line.
		b.failed = fmt.Sprintf("node %s: step %s failed", node, st.Name)
	}
	b.poke()
}

// ended is told when node's part ended (err nil: it finished).
func (b *barrierWatch) ended(node string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.arrived[node] && b.failed == "" {
		if err == nil {
			err = errors.New("its plan ended before it reached the barrier")
		}
		b.failed = fmt.Sprintf("node %s: %v", node, err)
	}
	b.poke()
}

// decide waits until every member is at the barrier ("") or one failed
// before it (why).
func (b *barrierWatch) decide(ctx context.Context, nodes []string) string {
	timeout := time.NewTimer(barrierDecide)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		failed := b.failed
		var waiting []string
		for _, n := range nodes {
			if !b.arrived[n] {
				waiting = append(waiting, n)
			}
		}
		b.mu.Unlock()
		if failed != "" {
			return failed
		}
		if len(waiting) == 0 {
			return ""
		}
		select {
		case <-b.changed:
		case <-timeout.C:
			return fmt.Sprintf("not every member stopped within %s (waiting for %s)", barrierDecide, strings.Join(waiting, ", "))
		case <-ctx.Done():
			return "the restore was interrupted before every member stopped"
		}
	}
}

// goOn lets every member past the barrier; each is asked until it
// answers or a minute passes.
func goOn(ctx context.Context, servers []*agentclient.Node, planID string) error {
	return errors.Join(onEach(servers, func(_ int, n *agentclient.Node) error {
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := n.Conn.Barrier.ContinueRestorePlan(ctx, &agentv1.ContinueRestorePlanRequest{PlanId: planID})
			if err == nil {
				return nil
			}
			if status.Code(err) == codes.FailedPrecondition || time.Now().After(deadline) {
				return fmt.Errorf("node %s: did not go on past the barrier: %s", n.Node, agentclient.Explain(err))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s: %w", n.Node, ctx.Err())
			case <-time.After(time.Second):
			}
		}
	})...)
}

// rollBackAll calls every member's part off before the barrier. It goes
// on when the plugin is interrupted: that is when it matters.
func rollBackAll(ctx context.Context, servers []*agentclient.Node, planID, reason string) []error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return onEach(servers, func(_ int, n *agentclient.Node) error {
		if _, err := n.Conn.Barrier.RollBackRestorePlan(ctx, &agentv1.RollBackRestorePlanRequest{PlanId: planID, Reason: reason}); err != nil {
			return fmt.Errorf("node %s: roll back: %s", n.Node, agentclient.Explain(err))
		}
		return nil
	})
}

// reportRollBack prints what each member's part did and where it left
// the node, from the agents' state files; it returns the error the
// command ends with.
func reportRollBack(ctx context.Context, out io.Writer, servers []*agentclient.Node, planID, reason string, rbErrs []error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var unsure []string
	for i, n := range servers {
		st, err := n.Conn.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{PlanId: planID})
		if err != nil {
			fmt.Fprintf(out, "node %s: unknown: %s\n", n.Node, agentclient.Explain(err))
			unsure = append(unsure, n.Node)
			continue
		}
		var stop, back *agentv1.RestoreStep
		for _, s := range st.Steps {
			switch s.Name {
			case stepStop:
				stop = s
			case stepRollBack:
				back = s
			}
		}
		var what string
		switch {
		case stop == nil || stop.State == agentv1.RestoreStep_STATE_PENDING:
			what = "not stopped"
		case stop.State == agentv1.RestoreStep_STATE_FAILED:
			what = fmt.Sprintf("stop FAILED (%s)", stop.Error)
		default:
			what = "stopped"
		}
		line := fmt.Sprintf("node %s: %s; %s", n.Node, what, st.Hint)
		if rbErrs[i] != nil {
			line += fmt.Sprintf(" (%v)", rbErrs[i])
		}
		fmt.Fprintln(out, line)
		backOK := back != nil && back.State == agentv1.RestoreStep_STATE_DONE
		neverStopped := back == nil && (stop == nil || stop.State == agentv1.RestoreStep_STATE_PENDING)
		if !st.Finished || !(backOK || neverStopped) {
			unsure = append(unsure, n.Node)
		}
	}
	if len(unsure) > 0 {
		return fmt.Errorf("restore %s was called off before any member's data dir changed (%s), but %s did not end rolled back: see the lines above and `kubectl dr etcd restore --status`", planID, reason, strings.Join(unsure, ", "))
	}
	return fmt.Errorf("restore %s was called off before any member's data dir changed (%s): every member runs on its data from before the restore; nothing was restored", planID, reason)
}
