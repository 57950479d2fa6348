package cmd_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// One agent answers, one address does not: both rows are printed, the
// failing node is named on stderr, exit 3.
func TestStatusReportsTheNodeThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.deadAgent("dead")

	r := e.run("status")
	if r.code != 3 {
		t.Fatalf("want exit 3\n%s", r)
	}
	rs := rows(t, r.stdout)
	if got := rs["server-1"]; len(got) < 3 || got[1] != "Ready" || got[2] != "agent" {
		t.Errorf("server-1 row %v, want Ready agent\n%s", got, r.stdout)
	}
	if got := rs["dead"]; len(got) < 2 || got[1] != "Unreachable" {
		t.Errorf("dead row %v, want Unreachable\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stderr, "error: node dead: agent at direct bufconn-dead:9650 did not answer: unavailable (") {
		t.Errorf("stderr does not name the unreachable agent:\n%s", r.stderr)
	}
	if !strings.HasSuffix(r.stderr, "error: 1 of 2 nodes could not be reached: dead\n") {
		t.Errorf("stderr does not end with the summary:\n%s", r.stderr)
	}

	r = e.run("status", "-o", "json")
	if r.code != 3 {
		t.Fatalf("-o json: want exit 3\n%s", r)
	}
	var list printers.AgentStatusList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("stdout is not a status list: %v\n%s", err, r.stdout)
	}
	if len(list.Items) != 2 || list.Items[0].Node != "dead" || list.Items[0].Reachable || list.Items[0].Error == "" || list.Items[1].Node != "server-1" || !list.Items[1].Reachable {
		t.Errorf("status list %+v", list.Items)
	}
	if je := jsonError(t, r.stderr); je.ExitCode != 3 || je.Message != "1 of 2 nodes could not be reached: dead" {
		t.Errorf("JSON error %+v", je)
	}

	r = e.run("status", "--node", "server-1")
	if r.code != 0 || rows(t, r.stdout)["dead"] != nil || r.stderr != "" {
		t.Errorf("--node server-1: want only the answering node, exit 0\n%s", r)
	}
}
