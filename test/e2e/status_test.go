package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

func statusJSON(t *testing.T, r result) printers.AgentStatusList {
	t.Helper()
	var list printers.AgentStatusList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status -o json printed no JSON (%v):\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return list
}

func TestStatusListsEveryNodeWithEtcdHealth(t *testing.T) {
	ensureRecoveryPoints(t)
	r := kubectlDR(t, nil, "status", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	list := statusJSON(t, r)
	etcdLayers := 0
	for _, l := range list.Layers {
		if l.Layer == "etcd" {
			etcdLayers++
			if l.State != printers.LayerOK || l.AgeSeconds == nil || *l.AgeSeconds > 600 {
				t.Errorf("etcd layer on %s: state %s age %v, want ok and minutes old after a save", l.Node, l.State, l.AgeSeconds)
			}
		}
	}
	if etcdLayers != 1 {
		t.Errorf("%d etcd layers, want the cluster's once: %+v", etcdLayers, list.Layers)
	}
	// Three servers with etcd members and one worker (agent-1), sorted.
	want := []string{"agent-1", "server-1", "server-2", "server-3"}
	if len(list.Items) != len(want) {
		t.Fatalf("%d nodes, want %v: %+v", len(list.Items), want, list.Items)
	}
	leaders := 0
	for i, s := range list.Items {
		if s.Node != want[i] {
			t.Errorf("item %d node = %q, want %q", i, s.Node, want[i])
		}
		if s.Node == "server-1" && !strings.HasPrefix(s.Via, "pod dr-system/") {
			t.Errorf("server-1 reached via %q, want its DaemonSet pod", s.Via)
		}
		if s.Node == "agent-1" {
			if !s.Reachable || s.Etcd != nil || strings.Join(s.Roles, ",") != "agent" {
				t.Errorf("agent-1: reachable %v roles %v etcd %+v, want a worker without etcd", s.Reachable, s.Roles, s.Etcd)
			}
			continue
		}
		if !s.Reachable || s.Etcd == nil || !s.Etcd.Healthy {
			t.Errorf("%s: reachable %v etcd %+v, want a healthy member", s.Node, s.Reachable, s.Etcd)
			continue
		}
		if s.ResticVersion != "0.19.1" {
			t.Errorf("%s: restic %q, want the pinned 0.19.1", s.Node, s.ResticVersion)
		}
		if strings.Join(s.Roles, ",") != "server,etcd" {
			t.Errorf("%s: roles %v, want server,etcd", s.Node, s.Roles)
		}
		if s.Etcd.Leader {
			leaders++
		}
		if s.Etcd.Name != s.Node {
			t.Errorf("%s: etcd member name %q", s.Node, s.Etcd.Name)
		}
	}
	if leaders != 1 {
		t.Errorf("%d members report leading, want exactly 1", leaders)
	}
}

func TestStatusTableReportsUnknownAndUnreachableNodes(t *testing.T) {
	ensureRecoveryPoints(t)
	// A node that has no agent, and an agent address where nothing listens.
	r := kubectlDR(t, nil, "status", "--node", "server-1", "--node", "ghost")
	if r.code != 3 {
		t.Fatalf("exit code %d, want 3 (partial); stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	rows := tableRows(r.stdout)
	if got := rows["server-1"]; len(got) < 4 || got[1] != "Ready" || got[3] != "healthy" {
		t.Errorf("server-1 row = %v, want Ready and healthy", got)
	}
	if got := rows["ghost"]; len(got) < 2 || got[1] != "Unreachable" {
		t.Errorf("ghost row = %v, want Unreachable", got)
	}
	if !strings.Contains(r.stderr, "node ghost: no agent found") {
		t.Errorf("stderr does not explain the unknown node:\n%s", r.stderr)
	}

	env := []string{"KUBECTL_DR_AGENTS=server-2=" + theLab.AgentAddr("server-2") + ",dead=127.0.0.1:1"}
	r = kubectlDR(t, env, "status")
	if r.code != 3 {
		t.Fatalf("exit code %d, want 3; stderr:\n%s", r.code, r.stderr)
	}
	rows = tableRows(r.stdout)
	if got := rows["server-2"]; len(got) < 2 || got[1] != "Ready" {
		t.Errorf("server-2 row = %v, want Ready: the reachable node is still reported", got)
	}
	if !strings.Contains(r.stderr, "node dead: agent at direct 127.0.0.1:1 did not answer") {
		t.Errorf("stderr does not name the unreachable agent:\n%s", r.stderr)
	}
}

func TestStatusBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"status", "-o", "xml"},
		{"status", "--agent", "no-address"},
		{"status", "--no-such-flag"},
		{"status", "extra-arg"},
	} {
		r := kubectlDR(t, nil, args...)
		if r.code != 2 {
			t.Errorf("%v: exit code %d, want 2; stderr: %s", args, r.code, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%v: printed data on a usage error: %q", args, r.stdout)
		}
	}
}

func TestAgentRefusesClientsWithoutTheInstallCertificate(t *testing.T) {
	files := mtls.Files{CA: labEnv(t, "KUBECTL_DR_CA"), Cert: labEnv(t, "KUBECTL_DR_CERT"), Key: labEnv(t, "KUBECTL_DR_KEY")}
	good, err := mtls.ClientConfig(files, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	noCert := good.Clone()
	noCert.Certificates = nil

	info := func(creds credentials.TransportCredentials) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc, err := grpc.NewClient(theLab.AgentAddr("server-1"), grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		_, err = agentv1.NewAgentServiceClient(cc).Info(ctx, &agentv1.InfoRequest{})
		return err
	}
	if err := info(credentials.NewTLS(good)); err != nil {
		t.Fatalf("the install's client certificate is refused: %v", err)
	}
	if err := info(credentials.NewTLS(noCert)); err == nil {
		t.Fatal("the agent answered a client without a certificate")
	}

	// A certificate from a CA of its own: the plugin must report the node
	// and say what to check.
	dir := t.TempDir()
	ca, _, err := pki.NewCA("not-the-install")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(pki.LeafOptions{CommonName: "intruder", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	if err := kp.WriteFiles(cert, key); err != nil {
		t.Fatal(err)
	}
	// Direct mode: the lab's CA, a client certificate it did not sign.
	r := kubectlDR(t, []string{"KUBECTL_DR_CA=" + files.CA, "KUBECTL_DR_CERT=" + cert, "KUBECTL_DR_KEY=" + key}, "status", "--node", "server-1")
	if r.code != 3 {
		t.Fatalf("exit code %d with a foreign certificate, want 3; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "node server-1") {
		t.Errorf("stderr does not name the node:\n%s", r.stderr)
	}
}

func TestStatusShowsAnEtcdMemberThatIsDown(t *testing.T) {
	ensureRecoveryPoints(t)
	// Stop server-3's member, see it reported, then bring the lab back up
	// (up is idempotent and only starts what is missing).
	if err := theLab.StopProcess("etcd-server-3"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := theLab.Restart(context.Background()); err != nil {
			t.Fatalf("bring the lab back: %v", err)
		}
	})
	r := kubectlDR(t, nil, "status", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0 (the agent answered; its member is down); stderr:\n%s", r.code, r.stderr)
	}
	for _, s := range statusJSON(t, r).Items {
		healthy := s.Etcd != nil && s.Etcd.Healthy
		switch {
		case s.Node == "agent-1":
		case s.Node == "server-3":
			if healthy || s.Etcd == nil || s.Etcd.Error == "" {
				t.Errorf("server-3 etcd = %+v, want unhealthy with an error", s.Etcd)
			}
		case !healthy:
			t.Errorf("%s etcd = %+v, want healthy (two of three keep quorum)", s.Node, s.Etcd)
		}
	}
}

func TestLabAPIServerAnswersKubectl(t *testing.T) {
	out := runKubectl(t, "get", "ns", "-o", "name")
	if !strings.Contains(out, "namespace/kube-system") {
		t.Errorf("kubectl get ns: %s", out)
	}
}

// tableRows maps the first column of a printed table to its fields.
// tableRows are the rows of the first table (the nodes) by their first
// column; the layers' table follows a blank line.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	nodes, _, _ := strings.Cut(strings.TrimSpace(out), "\n\n")
	for i, line := range strings.Split(nodes, "\n") {
		if i == 0 {
			continue
		}
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	return rows
}

// ensureRecoveryPoints gives every layer of the lab a fresh recovery point
// (an etcd snapshot, a shipped WAL segment), so that status meets its
// targets and exits 0 (or 3 for unreachable nodes), not 1 for a missed one.
func ensureRecoveryPoints(t *testing.T) {
	t.Helper()
	// On server-1, whose agent is the DaemonSet's pod: it knows the
	// snapshot it took at once, also when it is the only agent asked.
	if r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "status", "--node", "server-1"); r.code != 0 {
		t.Fatalf("save: exit %d\n%s", r.code, r.stderr)
	}
	// Something to archive: a switch with no WAL written since the last
	// one archives nothing.
	psql(t, "CREATE TABLE IF NOT EXISTS status_e2e (v int)")
	psql(t, "INSERT INTO status_e2e VALUES (1)")
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st := walStatus(t); st.Newest >= last && st.BacklogFiles == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not shipped in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
