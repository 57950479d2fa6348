package server_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
)

// Status reads and a second listener while a plan runs see its steps as
// recorded and never a half-written one (run with -race: the runner
// writes the steps while the calls read them).
func TestRestorePlanStatusWhileThePlanRuns(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	stopped := filepath.Join(dir, "stopped")
	cfg := &agentconfig.Config{
		NodeName: "worker-1", DataDir: dir, StateDir: filepath.Join(dir, "state"), TLS: c.server,
		Restic: agentconfig.Restic{Binary: "/nonexistent/restic"},
		Restore: agentconfig.Restore{Flavor: agentconfig.FlavorEtcd,
			StopCommand:  []string{"sh", "-c", "echo stopped >> " + stopped},
			StartCommand: []string{"true"}},
	}
	p := &restoreplan.Plan{ID: "plan-race", Node: "worker-1", Flavor: agentconfig.FlavorEtcd, Created: time.Now().UTC(), Snapshot: "snap-1"}
	for _, name := range []string{restoreplan.StepStop, restoreplan.StepStart} {
		p.Steps = append(p.Steps, restoreplan.Step{Name: name, State: restoreplan.Pending})
	}
	if err := restoreplan.PlansIn(cfg.StateDir).Save(p); err != nil {
		t.Fatal(err)
	}
	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	agent := dial(t, startAgent(t, cfg), credentials.NewTLS(clientTLS))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Two listeners (a plugin that reconnects) and four status readers.
	var wg sync.WaitGroup
	listen := func() []string {
		stream, err := agent.StartRestorePlan(ctx, &agentv1.StartRestorePlanRequest{PlanId: p.ID})
		if err != nil {
			t.Errorf("StartRestorePlan: %v", err)
			return nil
		}
		var seen []string
		for {
			ev, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return seen
			}
			if err != nil {
				t.Errorf("StartRestorePlan stream: %v", err)
				return seen
			}
			seen = append(seen, ev.GetStep().GetName()+"="+ev.GetStep().GetState().String())
		}
	}
	var first []string
	wg.Add(2)
	go func() { defer wg.Done(); first = listen() }()
	go func() { defer wg.Done(); listen() }()
	var final *agentv1.RestorePlanStatusResponse
	var finalMu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, err := agent.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{PlanId: p.ID})
				if err != nil {
					t.Errorf("RestorePlanStatus: %v", err)
					return
				}
				if len(st.Steps) != 2 {
					t.Errorf("status with %d steps, want 2: %v", len(st.Steps), st)
					return
				}
				if st.Finished {
					finalMu.Lock()
					final = st
					finalMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if final == nil {
		t.Fatal("the plan never finished")
	}
	for _, s := range final.Steps {
		if s.State != agentv1.RestoreStep_STATE_DONE {
			t.Errorf("step %s is %s after the plan finished, want done", s.Name, s.State)
		}
	}
	if got := strings.Join(first, " "); !strings.HasSuffix(got, "start=STATE_DONE") {
		t.Errorf("first listener saw %q, want it to end with start done", got)
	}
	if data, err := os.ReadFile(stopped); err != nil || string(data) != "stopped\n" {
		t.Errorf("stop command ran %q (%v), want once", data, err)
	}
}
