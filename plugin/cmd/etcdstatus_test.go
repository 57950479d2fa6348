package cmd_test

import (
	"context"
	"strings"
	"testing"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// fakeServerAgent is a k3s server's agent on a new host whose restore
// plan ended before it joined: no etcd member yet, a finished plan.
type fakeServerAgent struct {
	agentv1.UnimplementedAgentServiceServer
	node string
	plan *agentv1.RestorePlanStatusResponse
}

func (a *fakeServerAgent) Info(context.Context, *agentv1.InfoRequest) (*agentv1.InfoResponse, error) {
	return &agentv1.InfoResponse{NodeName: a.node, AgentVersion: "fake", Roles: []agentv1.NodeRole{agentv1.NodeRole_NODE_ROLE_SERVER}}, nil
}

func (a *fakeServerAgent) RestorePlanStatus(context.Context, *agentv1.RestorePlanStatusRequest) (*agentv1.RestorePlanStatusResponse, error) {
	return a.plan, nil
}

// etcd restore --status shows the plan of a server that holds no member
// (a new host held before it joined), with what to do; a node that is no
// server is left out.
func TestEtcdRestoreStatusShowsServersWithoutAMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fakeAgent("server-2", &fakeServerAgent{node: "server-2", plan: &agentv1.RestorePlanStatusResponse{
		PlanId: "restore-1", Started: true, Finished: true,
		Steps: []*agentv1.RestoreStep{
			{Name: "put-bootstrap-files", State: agentv1.RestoreStep_STATE_DONE},
			{Name: "wait-layers-restored", State: agentv1.RestoreStep_STATE_FAILED, Error: "not started: files abcd (node agent-1) failed"},
			{Name: "wait-reset-server", State: agentv1.RestoreStep_STATE_PENDING},
		},
		Hint: "k3s is stopped here and there is no data dir at /var/lib/rancher/k3s/server/db/etcd (a new host; ...): once the other layers are restored and the reset server runs, start k3s (systemctl start k3s): it joins",
	}})
	e.fakeAgent("agent-1", &fakeFilesAgent{node: "agent-1"})
	r := e.run("etcd", "restore", "--status")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	for _, want := range []string{"node server-2: plan restore-1 finished", "wait-layers-restored FAILED: not started: files abcd (node agent-1) failed", "wait-reset-server  not run", "next: k3s is stopped here and there is no data dir"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "agent-1:") {
		t.Errorf("a node that is no server is shown:\n%s", r.stdout)
	}
}
