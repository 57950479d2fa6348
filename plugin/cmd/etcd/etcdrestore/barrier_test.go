package etcdrestore

import (
	"context"
	"errors"
	"testing"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

func ev(name string, state agentv1.RestoreStep_State) *agentv1.RestoreStep {
	return &agentv1.RestoreStep{Name: name, State: state, Error: "boom"}
}

// The plugin lets the members go on only once every one waits at the
// barrier, and calls the restore off when one fails before it.
func TestBarrierWatchDecides(t *testing.T) {
	nodes := []string{"s1", "s2", "s3"}
	running, failed := agentv1.RestoreStep_STATE_RUNNING, agentv1.RestoreStep_STATE_FAILED

	all := newBarrierWatch()
	for _, n := range nodes {
		all.step(n, ev(stepStop, running))
		all.step(n, ev(stepBarrier, running))
	}
	// A failure past the barrier is not a reason to roll back.
	all.step("s1", ev("restore-data-dir", failed))
	if why := all.decide(context.Background(), nodes); why != "" {
		t.Errorf("every member at the barrier: %q, want go on", why)
	}

	one := newBarrierWatch()
	one.step("s1", ev(stepBarrier, running))
	one.step("s2", ev(stepBarrier, running))
	one.step("s3", ev(stepStop, failed))
	if why := one.decide(context.Background(), nodes); why != "node s3: step stop failed" {
		t.Errorf("s3's stop failed: %q", why)
	}

	lost := newBarrierWatch()
	lost.step("s1", ev(stepBarrier, running))
	lost.ended("s2", errors.New("lost the agent"))
	if why := lost.decide(context.Background(), nodes); why != "node s2: lost the agent" {
		t.Errorf("s2's agent lost: %q", why)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if why := newBarrierWatch().decide(ctx, nodes); why == "" {
		t.Error("interrupted: went on")
	}
}
