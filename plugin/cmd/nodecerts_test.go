package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// An agent serving another node's certificate (its files copied, or the
// address given for the wrong node) is refused, naming both nodes; the
// other nodes still answer.
func TestStatusRefusesAnAgentWithAnotherNodesCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	stolen := e.agentTLS("server-1")
	e.mu.Lock()
	e.nodeTLS["server-2"] = stolen
	e.mu.Unlock()
	e.agent("server-2", nil)

	r := e.run("status")
	if r.code != 3 {
		t.Fatalf("want exit 3\n%s", r)
	}
	rs := rows(t, r.stdout)
	if got := rs["server-1"]; len(got) < 2 || got[1] != "Ready" {
		t.Errorf("server-1 row %v, want Ready\n%s", got, r.stdout)
	}
	if got := rs["server-2"]; len(got) < 2 || got[1] == "Ready" {
		t.Errorf("server-2 row %v, want it not ready\n%s", got, r.stdout)
	}
	const want = "error: node server-2: the agent answering there presents the certificate of node server-1: refused (check that the pod or --agent address given for server-2 is that node's agent"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not say why server-2 is refused:\n%s\nwant %q", r.stderr, want)
	}

	r = e.run("status", "-o", "json")
	var list printers.AgentStatusList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("stdout is not a status list: %v\n%s", err, r.stdout)
	}
	if len(list.Items) != 2 || list.Items[0].Certificate != printers.CertificateNode || list.Items[1].Reachable || !strings.Contains(list.Items[1].Error, "presents the certificate of node server-1") {
		t.Errorf("status list %+v: want server-1 with its node's certificate, server-2 refused", list.Items)
	}
}

// An agent met with the bootstrap certificate is enrolled by whoever can
// read install's CA, and keeps its certificate; without the CA it answers
// with a warning (and gets no snapshot key: agent/server tests that).
func TestConnectEnrollsAnAgentWithTheBootstrapCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.unenrolled["server-1"] = true
	e.unenrolled["server-2"] = true
	e.agent("server-1", nil)
	e.agent("server-2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(nodes []string, withCA bool) (agentclient.Nodes, string) {
		t.Helper()
		e.agentCA = withCA
		o := (&testFactory{e}).AgentOptions(nodes)
		var warnings bytes.Buffer
		o.Warnings = &warnings
		ns, err := agentclient.Connect(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ns.Close)
		return ns, warnings.String()
	}

	ns, warnings := connect([]string{"server-2"}, false)
	if n := ns[0]; !n.Ready() || n.Enrolled {
		t.Fatalf("server-2 without the CA: ready %v enrolled %v (%v)", n.Ready(), n.Enrolled, n.Err)
	}
	const warn = "warning: node server-2: the agent serves the shared bootstrap certificate, which does not prove its node, and could not be enrolled (no CA to enroll it with): it gets no snapshot key until kubectl dr install, run by someone who can read Secret dr-system/dr-agent-ca, enrolls it\n"
	if warnings != warn {
		t.Errorf("warnings:\n%s\nwant:\n%s", warnings, warn)
	}

	ns, warnings = connect([]string{"server-1"}, true)
	if n := ns[0]; !n.Ready() || !n.Enrolled {
		t.Fatalf("server-1 with the CA: ready %v enrolled %v (%v)", n.Ready(), n.Enrolled, n.Err)
	}
	if want := "node server-1: agent enrolled: it now serves a certificate for its node\n"; warnings != want {
		t.Errorf("notes %q, want %q", warnings, want)
	}

	ns, warnings = connect([]string{"server-1"}, false)
	if n := ns[0]; !n.Ready() || !n.Enrolled || warnings != "" {
		t.Errorf("server-1 again: ready %v enrolled %v, warnings %q", n.Ready(), n.Enrolled, warnings)
	}
}
