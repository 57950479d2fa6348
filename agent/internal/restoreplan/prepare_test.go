package restoreplan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

func testConfig(t *testing.T, flavor string) *agentconfig.Config {
	t.Helper()
	dir := t.TempDir()
	etcdDir := filepath.Join(dir, "server", "db", "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &agentconfig.Config{
		NodeName: "server-1", DataDir: dir, StateDir: filepath.Join(dir, "state"),
		Restore: agentconfig.Restore{
			Flavor: flavor, EtcdDataDir: etcdDir, K3sBinary: "/bin/true",
			StopCommand: []string{"true"}, StartCommand: []string{"true"},
		},
	}
}

func resolve(context.Context) (*dbsnap.Snapshot, error) { return &dbsnap.Snapshot{Name: "s1"}, nil }

// Both the agent's RPC and dr-agent etcd restore build their plans here:
// the steps each part runs, and what a part that cannot run here gets.
func TestBuildStepsAndRefusals(t *testing.T) {
	member := Request{MemberName: "m1", PeerURLs: []string{"https://10.0.0.1:2380"}, InitialCluster: "m1=https://10.0.0.1:2380"}
	tests := []struct {
		name    string
		flavor  string
		req     Request
		steps   []string
		wantErr error
		errText string
		// noMember: the node's etcd data dir does not exist (a new host).
		noMember bool
	}{
		{name: "etcd member", flavor: agentconfig.FlavorEtcd, req: withMember(member, agentconfig.FlavorEtcd),
			steps: []string{StepVerify, StepStop, StepRestore, StepStart, StepHealthy}},
		{name: "k3s reset in a cluster", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s, Role: RoleReset},
			steps: []string{StepVerify, StepStop, StepWaitPeersStopped, StepClusterReset, StepStart, StepHealthy}},
		{name: "k3s server alone", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s, Role: RoleReset, Single: true},
			steps: []string{StepVerify, StepStop, StepClusterReset, StepStart, StepHealthy}},
		{name: "k3s onto a new host", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s, Role: RoleReset, Single: true, Bootstrap: BootstrapAll},
			steps: []string{StepVerify, StepStop, StepBootstrap, StepClusterReset, StepStart, StepHealthy}},
		{name: "k3s rejoin", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, ResetClientURLs: []string{"https://10.0.0.1:2379"}},
			steps: []string{StepStop, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy}},
		{name: "k3s reset onto a new host in a cluster", flavor: agentconfig.FlavorK3s, noMember: true,
			req:   Request{Flavor: agentconfig.FlavorK3s, Role: RoleReset, NewHost: true, Bootstrap: BootstrapAll},
			steps: []string{StepVerify, StepStop, StepBootstrap, StepClusterReset, StepStart, StepHealthy}},
		{name: "k3s new host joining", flavor: agentconfig.FlavorK3s, noMember: true,
			req:   Request{Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, NewHost: true, Bootstrap: BootstrapAll, ResetClientURLs: []string{"https://10.0.0.1:2379"}, Resolve: resolve},
			steps: []string{StepStop, StepBootstrap, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy}},
		{name: "k3s rejoin without a member", flavor: agentconfig.FlavorK3s, noMember: true,
			req:     Request{Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, ResetClientURLs: []string{"https://10.0.0.1:2379"}},
			wantErr: ErrNotHere, errText: "not an etcd member"},
		{name: "flavour differs from the node's", flavor: agentconfig.FlavorK3s, req: withMember(member, agentconfig.FlavorEtcd),
			wantErr: ErrNotHere, errText: "restores the k3s way"},
		{name: "etcd part without a member", flavor: agentconfig.FlavorEtcd, req: Request{Flavor: agentconfig.FlavorEtcd},
			wantErr: ErrInvalid, errText: "names no member"},
		{name: "bootstrap files with etcd", flavor: agentconfig.FlavorEtcd, req: func() Request {
			r := withMember(member, agentconfig.FlavorEtcd)
			r.Bootstrap = BootstrapToken
			return r
		}(),
			wantErr: ErrInvalid, errText: "k3s's files"},
		{name: "rejoin without the reset server", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s, Role: RoleRejoin},
			wantErr: ErrInvalid, errText: "no client URL"},
		{name: "no role", flavor: agentconfig.FlavorK3s, req: Request{Flavor: agentconfig.FlavorK3s},
			wantErr: ErrInvalid, errText: "no role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.flavor)
			if tc.noMember {
				if err := os.RemoveAll(cfg.Restore.EtcdDataDir); err != nil {
					t.Fatal(err)
				}
			}
			tc.req.ID = "plan-1"
			if tc.req.Role != RoleRejoin {
				tc.req.Resolve = resolve
			}
			p, err := Build(cfg, tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := p.StepNames()
			for _, s := range p.Steps {
				if s.State != Pending {
					t.Errorf("step %s is %s, want pending", s.Name, s.State)
				}
			}
			if diff := cmp.Diff(tc.steps, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func withMember(r Request, flavor string) Request {
	r.Flavor = flavor
	return r
}

// A node holding an unfinished plan, or one prepared moments ago, refuses
// another; nothing is written for the refused one.
func TestPrepareRefusesWhileAnotherRestoreHoldsTheNode(t *testing.T) {
	cfg := testConfig(t, agentconfig.FlavorK3s)
	plans := PlansIn(cfg.StateDir)
	prepared := &Plan{ID: "plan-a", Created: time.Now().UTC(), Steps: []Step{{Name: StepVerify, State: Pending}}}
	if err := plans.Save(prepared); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(context.Background(), cfg, nil, Request{ID: "plan-b", Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, ResetClientURLs: []string{"https://x:2379"}})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "plan-a") {
		t.Fatalf("err = %v, want ErrBusy naming plan-a", err)
	}
	if _, err := plans.Load("plan-b"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused plan was written: %v", err)
	}

	prepared.Started = true
	prepared.Steps[0].State = Running
	if err := plans.Save(prepared); err != nil {
		t.Fatal(err)
	}
	_, err = Prepare(context.Background(), cfg, nil, Request{ID: "plan-b", Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, ResetClientURLs: []string{"https://x:2379"}})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("err = %v, want ErrBusy for the unfinished plan", err)
	}
}
