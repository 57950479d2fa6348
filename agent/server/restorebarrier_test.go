package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
)

// Over the wire: a held plan stops its member and waits at the barrier;
// going on past it is refused until it is there, a roll-back after it
// is let go is refused, and a plan called off starts its member again.
func TestRestoreBarrierOverTheWire(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	cfg := &agentconfig.Config{
		NodeName: "server-1", DataDir: dir, StateDir: filepath.Join(dir, "state"), TLS: c.server,
		Restic: agentconfig.Restic{Binary: "/nonexistent/restic"},
		Restore: agentconfig.Restore{Flavor: agentconfig.FlavorEtcd,
			StopCommand:  []string{"true"},
			StartCommand: []string{"touch", started}},
		// No etcd answers here: the roll-back starts the member and
		// waits for it, which the test does not (it reads the start).
		Etcd: agentconfig.Etcd{Endpoint: "https://127.0.0.1:1"},
	}
	newPlan := func(id string) {
		p := &restoreplan.Plan{ID: id, Node: "server-1", Flavor: agentconfig.FlavorEtcd, Created: time.Now().UTC(), Snapshot: "snap-1", Member: restoreplan.Member{DataDir: filepath.Join(dir, "etcd")}}
		for _, name := range []string{restoreplan.StepStop, restoreplan.StepRestore, restoreplan.StepStart} {
			p.Steps = append(p.Steps, restoreplan.Step{Name: name, State: restoreplan.Pending})
		}
		if err := restoreplan.PlansIn(cfg.StateDir).Save(p); err != nil {
			t.Fatal(err)
		}
	}
	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	lis := startAgent(t, cfg)
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	agent, barrier := agentv1.NewAgentServiceClient(cc), agentv1.NewRestoreBarrierServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	newPlan("plan-rb")
	held, err := barrier.HoldRestorePlan(ctx, &agentv1.HoldRestorePlanRequest{PlanId: "plan-rb"})
	if err != nil || strings.Join(held.GetSteps(), " ") != "stop wait-all-stopped restore-data-dir start" {
		t.Fatalf("HoldRestorePlan: %v, %v", held, err)
	}
	if _, err := barrier.ContinueRestorePlan(ctx, &agentv1.ContinueRestorePlanRequest{PlanId: "plan-rb"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "has not reached its barrier") {
		t.Errorf("ContinueRestorePlan before the plan started: %v, want it refused", err)
	}
	stream, err := agent.StartRestorePlan(ctx, &agentv1.StartRestorePlanRequest{PlanId: "plan-rb"})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, stream, "wait-all-stopped", agentv1.RestoreStep_STATE_RUNNING)
	if _, err := barrier.RollBackRestorePlan(ctx, &agentv1.RollBackRestorePlanRequest{PlanId: "plan-rb", Reason: "node server-2: step stop failed"}); err != nil {
		t.Fatalf("RollBackRestorePlan: %v", err)
	}
	waitEvent(t, stream, "roll-back", agentv1.RestoreStep_STATE_RUNNING)
	// The start command runs before the roll-back waits for health.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the roll-back did not start the member")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := barrier.ContinueRestorePlan(ctx, &agentv1.ContinueRestorePlanRequest{PlanId: "plan-rb"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "called off") {
		t.Errorf("ContinueRestorePlan after the roll-back: %v, want it refused", err)
	}
}

func waitEvent(t *testing.T, stream agentv1.AgentService_StartRestorePlanClient, step string, state agentv1.RestoreStep_State) {
	t.Helper()
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for %s %s: %v", step, state, err)
		}
		if ev.Step.Name == step && ev.Step.State == state {
			return
		}
	}
}
