package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Three agents, one per server, on a schedule of every two seconds: only
// the leader's agent acts, so each tick makes one snapshot, and retention
// (keep the last 2) leaves two in the store and on disk.
func TestEtcdScheduledSnapshotsOnePerTickWithRetention(t *testing.T) {
	ctx := context.Background()
	clusterID := fmt.Sprintf("sched-%d", time.Now().UnixNano())
	metrics := map[string]int{}
	var names []string
	for _, node := range theLab.EtcdNodes() {
		cfg, err := theLab.AgentConfig(node)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		metrics[node] = freePort(t)
		cfg.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", metrics[node])
		cfg.ClusterID = clusterID
		cfg.StateDir = t.TempDir()
		cfg.Etcd.Schedule = "*/2 * * * * *"
		cfg.Etcd.ScheduleName = "tick"
		cfg.Etcd.Retention = agentconfig.Retention{KeepLast: 2}
		name := "agent-sched-" + node
		if err := theLab.StartAgent(ctx, name, cfg); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	stopAll := func() {
		for _, n := range names {
			if err := theLab.StopProcess(n); err != nil {
				t.Error(err)
			}
		}
	}
	defer stopAll()

	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	storedTicks := func() []string {
		var stored []string
		for obj := range mc.ListObjects(ctx, theLab.State.Bucket, minio.ListObjectsOptions{Prefix: "lab/" + clusterID + "/etcd/", Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			if strings.HasSuffix(obj.Key, ".json") {
				stored = append(stored, strings.TrimSuffix(filepath.Base(obj.Key), ".json"))
			}
		}
		return stored
	}
	localTicks := func() []string {
		var local []string
		for _, node := range theLab.EtcdNodes() {
			files, _ := filepath.Glob(filepath.Join(theLab.DataDir(node), "server", "db", "snapshots", "tick-*"))
			for _, f := range files {
				local = append(local, filepath.Base(f))
			}
		}
		return local
	}
	// Wait for at least four ticks to have acted, and for a moment when
	// the newest tick's retention has run (a tick logs its snapshot
	// before its retention pass, and stopping the agents then would cut
	// the pass short): the store and the nodes then hold the newest two.
	deadline := time.Now().Add(30 * time.Second)
	var taken, stored, local []string
	for {
		taken = scheduledSnapshots(t, names)
		stored, local = storedTicks(), localTicks()
		kept := len(taken) >= 2 && len(stored) == 2 && slices.Contains(stored, taken[len(taken)-1]) && slices.Contains(stored, taken[len(taken)-2]) && len(local) == 2
		if (len(taken) >= 4 && kept) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The metrics of the agent that took the last one.
	if len(taken) == 0 {
		t.Fatalf("no scheduled snapshot in 30 s")
	}
	last := taken[len(taken)-1]
	leaderNode := strings.Split(strings.TrimPrefix(last, "tick-"), "-")
	node := leaderNode[0] + "-" + leaderNode[1]
	body := getMetrics(t, metrics[node])
	stopAll()
	if len(taken) < 4 {
		t.Fatalf("only %d scheduled snapshots in 30 s: %v", len(taken), taken)
	}

	seconds := map[string]bool{}
	for _, n := range scheduledSnapshots(t, names) {
		sec := n[strings.LastIndex(n, "-")+1:]
		if seconds[sec] {
			t.Errorf("two snapshots in the tick at %s: %v", sec, taken)
		}
		seconds[sec] = true
	}
	if len(stored) != 2 || !slices.Contains(stored, taken[len(taken)-1]) || !slices.Contains(stored, taken[len(taken)-2]) {
		t.Errorf("store holds %v; want the newest two of %v", stored, taken)
	}
	if len(local) != 2 {
		t.Errorf("local copies %v; want the newest two", local)
	}

	if v := metricValue(body, "dr_etcd_snapshot_last_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success metric %v is not recent\n%s", v, body)
	}
	if v := metricValue(body, "dr_etcd_snapshot_rpo_seconds"); v < 0 || v > 10 {
		t.Errorf("rpo metric %v, want a few seconds", v)
	}
}

var scheduledRE = regexp.MustCompile(`"msg":"scheduled snapshot".*"snapshot":"(tick-[^"]+)"`)

func scheduledSnapshots(t *testing.T, agents []string) []string {
	t.Helper()
	var out []string
	for _, a := range agents {
		f, err := os.Open(theLab.LogPath(a))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := scheduledRE.FindStringSubmatch(sc.Text()); m != nil {
				out = append(out, m[1])
			}
		}
		f.Close()
	}
	// Order by the unix time at the end of the name.
	sortByTime(out)
	return out
}

func sortByTime(names []string) {
	at := func(n string) int64 {
		v, _ := strconv.ParseInt(n[strings.LastIndex(n, "-")+1:], 10, 64)
		return v
	}
	sort.SliceStable(names, func(i, j int) bool { return at(names[i]) < at(names[j]) })
}

func getMetrics(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// waitMetric waits up to 15 s for the agent's metric series to reach want.
func waitMetric(t *testing.T, port int, series string, want float64, failure string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for metricValue(getMetrics(t, port), series) != want {
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func metricValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}
