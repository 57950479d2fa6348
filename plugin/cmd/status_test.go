package cmd_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
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

// etcdMember makes the agent's data dir look like an embedded etcd
// member's, with an etcd that is not there (status reports it unhealthy
// at once: nothing listens on the port).
func etcdMember(t *testing.T) func(*agentconfig.Config) {
	return func(c *agentconfig.Config) {
		if err := os.MkdirAll(filepath.Join(c.DataDir, "server", "db", "etcd"), 0o755); err != nil {
			t.Fatal(err)
		}
		c.Etcd.Endpoint = "https://127.0.0.1:1"
	}
}

// withDefaults applies mutate, then the defaults the agent's config
// parser applies to a config file (schedules, RPO targets).
func withDefaults(t *testing.T, mutate func(*agentconfig.Config)) func(*agentconfig.Config) {
	return func(c *agentconfig.Config) {
		if mutate != nil {
			mutate(c)
		}
		done, err := agentconfig.Local(*c)
		if err != nil {
			t.Fatal(err)
		}
		*c = *done
	}
}

// writeWAL stores a WAL segment of source, stored age ago.
func (e *env) writeWAL(source, segment string, age time.Duration) {
	e.t.Helper()
	key := walobj.Key(source, segment)
	if _, err := e.store.Put(context.Background(), key, strings.NewReader("wal"), 3); err != nil {
		e.t.Fatal(err)
	}
	at := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(e.storeDir, clusterID, key), at, at); err != nil {
		e.t.Fatal(err)
	}
}

// Two etcd members and a worker with a WAL source: the etcd layer is
// shown once, the 13h old snapshot misses the default 12h target (twice
// the 6h schedule), exit 1 and a stderr line naming node, layer, age and
// target; the WAL source within its 5m target is ok, files are off.
func TestStatusShowsEachLayerAndFailsOnAMissedTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "dr-auto-server-1-1", Node: "server-1", Created: time.Now().Add(-13 * time.Hour), Revision: 7, Size: 1 << 20, Uploaded: true, Compression: "zstd"})
	e.writeWAL("pg-main", "000000010000000000000003", time.Minute)
	e.agent("server-1", withDefaults(t, etcdMember(t)))
	e.agent("server-2", withDefaults(t, etcdMember(t)))
	spool := t.TempDir()
	e.agent("worker-1", withDefaults(t, func(c *agentconfig.Config) {
		c.WAL.Sources = []agentconfig.WALSource{{Name: "pg-main", Spool: spool}}
	}))

	r := e.run("status")
	if r.code != 1 {
		t.Fatalf("want exit 1 (target missed)\n%s", r)
	}
	layers := layerRows(t, r.stdout)
	if got := layers["server-1 etcd"]; strings.Join(got, " ") != "server-1 etcd missed 13h 12h -" {
		t.Errorf("etcd row %q, want missed 13h 12h -\n%s", got, r.stdout)
	}
	if _, twice := layers["server-2 etcd"]; twice {
		t.Errorf("the cluster's etcd layer is shown for each member\n%s", r.stdout)
	}
	if got := layers["worker-1 wal/pg-main"]; strings.Join(got, " ") != "worker-1 wal/pg-main ok 60s 5m continuous -" {
		t.Errorf("wal row %q\n%s", got, r.stdout)
	}
	if got := layers["server-2 files"]; len(got) < 3 || got[2] != "off" {
		t.Errorf("files row %q, want off (no restic password)\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stderr, "\nserver-1 etcd: newest snapshot 13h ago, target 12h\n") && !strings.HasPrefix(r.stderr, "server-1 etcd: newest snapshot 13h ago, target 12h\n") {
		t.Errorf("stderr does not name the missed target:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "error: 1 recovery point target(s) missed: server-1 etcd: take a backup now") {
		t.Errorf("stderr does not end with the summary:\n%s", r.stderr)
	}

	r = e.run("status", "-o", "json")
	if r.code != 1 {
		t.Fatalf("-o json: want exit 1\n%s", r)
	}
	var list struct {
		APIVersion string                   `json:"apiVersion"`
		Kind       string                   `json:"kind"`
		Layers     []map[string]interface{} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("stdout is not a status list: %v\n%s", err, r.stdout)
	}
	if list.APIVersion != "dr.kubectl.io/v1" || list.Kind != "AgentStatusList" || len(list.Layers) != 5 {
		t.Fatalf("list %s %s with %d layers, want 5 (etcd once, 3 files, 1 wal)\n%s", list.APIVersion, list.Kind, len(list.Layers), r.stdout)
	}
	etcd := list.Layers[0]
	if etcd["node"] != "server-1" || etcd["layer"] != "etcd" || etcd["state"] != "missed" || etcd["newestName"] != "dr-auto-server-1-1" ||
		etcd["rpoTargetSeconds"] != float64(12*3600) || etcd["schedule"] != "0 */6 * * *" || etcd["nextRun"] == nil || etcd["newest"] == nil {
		t.Errorf("etcd layer %v", etcd)
	}
	if age, _ := etcd["ageSeconds"].(float64); age < 13*3600 || age > 13*3600+60 {
		t.Errorf("etcd ageSeconds %v, want 13h", etcd["ageSeconds"])
	}
	if je := jsonError(t, r.stderr); je.ExitCode != 1 {
		t.Errorf("JSON error %+v", je)
	}

	// A raised target is met: exit 0, the row says ok.
	e2 := newEnv(t)
	e2.writeSnapshot(&dbsnap.Snapshot{Name: "dr-auto-server-1-1", Node: "server-1", Created: time.Now().Add(-13 * time.Hour), Revision: 7, Size: 1 << 20, Uploaded: true, Compression: "zstd"})
	e2.agent("server-1", withDefaults(t, func(c *agentconfig.Config) { etcdMember(t)(c); c.Etcd.RPOTarget = "24h" }))
	r = e2.run("status")
	if got := layerRows(t, r.stdout)["server-1 etcd"]; r.code != 0 || strings.Join(got, " ") != "server-1 etcd ok 13h 24h -" {
		t.Errorf("rpoTarget 24h: want exit 0 and ok, row %q\n%s", got, r)
	}
}

// Unreachable nodes and a missed target: exit 1 wins, both are named.
func TestStatusMissedTargetWinsOverUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("worker-1", withDefaults(t, func(c *agentconfig.Config) {
		c.WAL.Sources = []agentconfig.WALSource{{Name: "pg-main", Spool: t.TempDir()}}
	}))
	e.deadAgent("dead")
	r := e.run("status")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	for _, want := range []string{"worker-1 wal/pg-main: no WAL file yet, target 5m\n", "error: 1 of 2 nodes could not be reached: dead\n", "error: 1 recovery point target(s) missed: worker-1 wal/pg-main"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// layerRows are the rows of the layers' table (after the first empty
// line), by "NODE LAYER", up to the LAST FAILURE column.
func layerRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no layers table:\n%s", out)
	}
	rs := map[string][]string{}
	for i, l := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		f := strings.Fields(l)
		if i == 0 {
			if strings.Join(f, " ") != "NODE LAYER STATE AGE TARGET NEXT RUN LAST FAILURE" {
				t.Fatalf("layers header %q", l)
			}
			continue
		}
		if len(f) > 5 && f[5] == "in" {
			f = append(f[:5], f[7:]...) // "in 4h" is not compared
		}
		rs[f[0]+" "+f[1]] = f
	}
	return rs
}

// An agent of another version than the plugin is named with how to
// upgrade it; one of the same version is not.
func TestStatusWarnsAboutAnAgentOfAnotherVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.fakeAgent("server-2", &fakeFilesAgent{node: "server-2"})

	r := e.run("status")
	want := "warning: server-2 runs dr-agent fake, this kubectl-dr is " + buildinfo.Get().Version + ": run `kubectl dr install` with this kubectl-dr to upgrade the agents to it\n"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks the version warning %q:\n%s", want, r.stderr)
	}
	if strings.Contains(r.stderr, "server-1 runs dr-agent") {
		t.Errorf("server-1 runs this build's version, yet a warning names it:\n%s", r.stderr)
	}
	if rs := rows(t, r.stdout); len(rs["server-2"]) < 2 || rs["server-2"][1] != "Ready" {
		t.Errorf("server-2 row %v: a version mismatch is a warning, the node still answers\n%s", rs["server-2"], r.stdout)
	}
}
