package e2e

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// kubectlDrill runs kubectl dr drill with the user's environment; a drill
// restores every layer, which takes longer than the other verbs.
func kubectlDrill(t *testing.T, args ...string) result {
	t.Helper()
	r := labtest.Run(t, theLab, 8*time.Minute, theLab.Bin.KubectlDR, nil, append([]string{"drill"}, args...)...)
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
}

func drillIDIn(t *testing.T, r result) string {
	t.Helper()
	for _, f := range strings.Fields(r.stdout) {
		if strings.HasPrefix(f, "drill-") && drillreport.ValidateID(f) == nil {
			return f
		}
	}
	t.Fatalf("no drill id in the output: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	return ""
}

func showDrill(t *testing.T, id string) printers.DrillReport {
	t.Helper()
	r := kubectlDR(t, nil, "drill", "show", id, "-o", "json")
	var rep printers.DrillReport
	if r.code != 0 {
		t.Fatalf("drill show %s: exit %d\n%s", id, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("drill show -o json: %v\n%s", err, r.stdout)
	}
	return rep
}

// artifactsDir keeps what a test produced for people to look at.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(theLab.Root, "_output", "artifacts", t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The proof, through the plugin with the user's kubeconfig:
// pgbench writes around a base backup and a backup set, WAL shipped, then
// `kubectl dr drill --latest --pg pg-main` passes with the RTO and each
// layer's RPO in the stored report, lists in drill ls, leaves no scratch
// and no process on any node, and its page renders its timeline in
// headless Chromium. With the stored snapshot object damaged the next
// drill exits 1 naming the object's key, the other layers still rehearsed.
func TestDrillLatestPassesThenFailsOnACorruptSnapshot(t *testing.T) {
	pgbench(t, "-i", "-s", "1", "-q")
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	pgbench(t, "-T", "3", "-c", "2", "-n")
	if r := kubectlDR(t, nil, "backup", "create", "drill-e2e"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "drill-e2e") })
	pgbench(t, "-T", "2", "-c", "2", "-n")
	rows := psql(t, "SELECT count(*) FROM pgbench_history")
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}

	r := kubectlDrill(t, "--latest", "--pg", lab.WALSource)
	if r.code != 0 {
		t.Fatalf("drill --latest --pg %s: exit %d\n%s\n%s", lab.WALSource, r.code, r.stdout, r.stderr)
	}
	id := drillIDIn(t, r)
	for _, want := range []string{"PASSED", "postgres/" + lab.WALSource, "etcd/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
		}
	}
	rep := showDrill(t, id)
	if !rep.Passed || !rep.RTO.Complete || rep.RTO.Seconds <= 0 || rep.WallSeconds < rep.RTO.Seconds-1 {
		t.Errorf("report: passed %v, RTO %+v, wall %vs", rep.Passed, rep.RTO, rep.WallSeconds)
	}
	layers := map[string]int{}
	for _, p := range rep.RPO {
		layers[p.Layer]++
		if p.Seconds < 0 || p.Seconds > 300 || !p.OK {
			t.Errorf("RPO of %s/%s is %vs", p.Layer, p.Name, p.Seconds)
		}
	}
	if layers["etcd"] != 1 || layers["files"] < 1 || layers["postgres"] != 1 {
		t.Errorf("RPO per layer %v; want etcd, files and postgres", layers)
	}
	var storeKey string
	for _, p := range rep.Parts {
		switch p.Layer {
		case "etcd":
			storeKey = p.Facts["storeKey"]
		case "postgres":
			if p.Counts["public.pgbench_history"] != int64(mustAtoi(t, rows)) || p.Counts["public.pgbench_accounts"] != 100000 {
				t.Errorf("the scratch database counted %v; want %s history rows and 100000 accounts", p.Counts, rows)
			}
		}
	}
	if storeKey == "" {
		t.Fatalf("the etcd part names no storeKey: %+v", rep.Parts)
	}
	if rep.Runner == "" || !strings.Contains(rep.Runner, "(kubeconfig)") {
		t.Errorf("runner %q; want the kubeconfig's user", rep.Runner)
	}
	for _, n := range theLab.State.Nodes {
		noScratch(t, n, id)
		if out := pgProcessesOn(t, filepath.Join(agentStateDir(t, n), "drill")); out != "" {
			t.Errorf("the drill left PostgreSQL running on %s: %s", n, out)
		}
	}
	if ls := kubectlDR(t, nil, "drill", "ls"); ls.code != 0 || !strings.Contains(ls.stdout, id) {
		t.Errorf("drill ls: exit %d\n%s\n%s", ls.code, ls.stdout, ls.stderr)
	} else if row := lineWith(ls.stdout, id); !strings.Contains(row, "PASSED") {
		t.Errorf("drill ls row: %q", row)
	}
	screenshotTimeline(t, id)

	// A damaged snapshot object: the next drill fails naming it.
	key := "lab/" + theLab.State.ClusterID + "/" + storeKey
	stored := storeObject(t, key)
	putStoreObject(t, key, stored[:len(stored)*2/3])
	t.Cleanup(func() { putStoreObject(t, key, stored) })
	r = kubectlDrill(t, "--latest", "--pg", lab.WALSource)
	if r.code != 1 || !strings.Contains(r.stderr, storeKey) || !strings.Contains(r.stderr, "failed") {
		t.Fatalf("drill with a damaged snapshot: exit %d, want 1 naming %s\n%s\n%s", r.code, storeKey, r.stdout, r.stderr)
	}
	bad := showDrill(t, drillIDIn(t, r))
	if bad.Passed {
		t.Errorf("the stored report of the failed drill says it passed")
	}
	for _, p := range bad.Parts {
		if p.Layer == "etcd" && (p.OK || !strings.Contains(strings.Join(p.Problems, " "), storeKey)) {
			t.Errorf("etcd part: ok %v, problems %q", p.OK, p.Problems)
		}
		if p.Layer == "postgres" && !p.OK {
			t.Errorf("the postgres part failed too: %q %s", p.Problems, p.Error)
		}
	}
	for _, n := range theLab.State.Nodes {
		noScratch(t, n, bad.ID)
	}
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("%q is not a number", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// screenshotTimeline saves the drill's page and a screenshot of it by
// headless Chromium in the test's artifacts, and checks the timeline was
// drawn: restore bars in their blue, the critical path in its orange.
func screenshotTimeline(t *testing.T, id string) {
	t.Helper()
	page := kubectlDR(t, nil, "drill", "show", id, "-o", "html")
	if page.code != 0 || !strings.HasPrefix(page.stdout, "<!DOCTYPE html>") {
		t.Fatalf("drill show -o html: exit %d\n%.300s\n%s", page.code, page.stdout, page.stderr)
	}
	dir := artifactsDir(t)
	html := filepath.Join(dir, id+".html")
	shot := filepath.Join(dir, id+".png")
	if err := os.WriteFile(html, []byte(page.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium to render the report with: hack/setup.sh --with-browser installs it (%v)", err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1200,800", "file://"+html)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot %s is not a PNG: %v", shot, err)
	}
	blue, orange := countColor(img, 0x1e, 0x88, 0xe5), countColor(img, 0xff, 0x6f, 0x00)
	t.Logf("screenshot %s: %d restore-bar pixels, %d critical-path pixels", shot, blue, orange)
	if blue < 500 || orange < 50 {
		t.Errorf("the timeline did not render in %s: %d restore-bar pixels, %d critical-path pixels", shot, blue, orange)
	}
}

// countColor counts the pixels within a small distance of r, g, b.
func countColor(img image.Image, r, g, b uint8) int {
	near := func(a uint32, want uint8) bool {
		d := int(a>>8) - int(want)
		return d > -12 && d < 12
	}
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}

// etcdLeader is the node whose etcd member leads, as kubectl dr status
// reports it.
func etcdLeader(t *testing.T) string {
	t.Helper()
	r := kubectlDR(t, nil, "status", "-o", "json")
	var list printers.AgentStatusList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	for _, s := range list.Items {
		if s.Etcd != nil && s.Etcd.Leader {
			return s.Node
		}
	}
	t.Fatalf("no etcd leader in status:\n%s", r.stdout)
	return ""
}

// metric reads one unlabelled value from an agent's /metrics.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s/metrics", name, addr)
	return 0
}

// drill.schedule runs drills unattended on the etcd leader's agent: an
// agent with the leader's configuration and a schedule every 5 seconds
// rehearses every layer of the latest plan on its own node and keeps the
// same report, run by "schedule on NODE", which drill ls lists; its
// metrics give the drill's RTO, RPO and success time.
func TestDrillScheduledOnTheLeader(t *testing.T) {
	pgbench(t, "-i", "-s", "1", "-q")
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := kubectlDR(t, nil, "backup", "create", "drill-sched-e2e"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "drill-sched-e2e") })
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}
	leader := etcdLeader(t)
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const proc = "agent-drill-schedule"
	startExtraAgent(t, proc, leader, func(c *agentconfig.Config) {
		c.MetricsAddress = metrics
		c.Drill.Schedule = "*/5 * * * * *"
		// The node's own agent ships the WAL, backs up and copies the
		// buckets; this one only drills.
		c.WAL.Sources, c.Buckets.Sources, c.Restic.Schedule = nil, nil, "off"
		// A state dir the drill's scratch PostgreSQL (the database's
		// user) can reach, as a node's /var/lib/dr-agent is; t.TempDir's
		// are 0700.
		for d := c.StateDir; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	})
	runner := "schedule on " + leader
	var found *printers.DrillReport
	deadline = time.Now().Add(4 * time.Minute)
	for found == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no drill by %q in 4 minutes; the agent's log:\n%s", runner, readFile(t, theLab.LogPath(proc)))
		}
		time.Sleep(time.Second)
		r := kubectlDR(t, nil, "drill", "ls", "-o", "json")
		var list printers.DrillList
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("drill ls -o json: %v\n%s", err, r.stdout)
		}
		for _, d := range list.Items {
			// One the agent's reload called off is saved as interrupted:
			// wait for one that ran to its end.
			if d.Runner == runner && !d.Interrupted {
				found = d
				break
			}
		}
	}
	if !found.Passed {
		t.Errorf("the scheduled drill failed: %q\nnotes %q", found.Reasons, found.Notes)
	}
	layers := map[string]bool{}
	for _, p := range found.Parts {
		layers[p.Layer] = true
		if p.Node != leader {
			t.Errorf("part %s ran on %s, want the leader %s", p.Key(), p.Node, leader)
		}
	}
	if !layers["etcd"] || !layers["files"] || !layers["postgres"] {
		t.Errorf("the scheduled drill rehearsed %v; want etcd, files and postgres", layers)
	}
	if got := metric(t, metrics, "dr_drill_last_rto_seconds"); got <= 0 {
		t.Errorf("dr_drill_last_rto_seconds %v", got)
	}
	if got := metric(t, metrics, "dr_drill_last_rpo_seconds"); got <= 0 || got > 300 {
		t.Errorf("dr_drill_last_rpo_seconds %v", got)
	}
	if got := metric(t, metrics, "dr_drill_last_success_timestamp_seconds"); found.Passed && int64(got) < found.Started.Unix() {
		t.Errorf("dr_drill_last_success_timestamp_seconds %v, before the drill started (%v)", got, found.Started.Unix())
	}
	if err := theLab.StopProcess(proc); err != nil {
		t.Fatal(err)
	}
}
