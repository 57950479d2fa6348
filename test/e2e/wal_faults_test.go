package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// s3Faults stands between an agent and MinIO at the HTTP level: while
// down it drops every connection (MinIO stopped); with an error rate it
// answers that share of requests 503 SlowDown (MinIO answering errors).
type s3Faults struct {
	srv     *http.Server
	addr    string
	down    atomic.Bool
	errRate atomic.Int64 // percent
}

func newS3Faults(t *testing.T, target string) *s3Faults {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &s3Faults{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		if rand.Int64N(100) < f.errRate.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go f.srv.Serve(lis)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

// Faults from the issue, against a real PostgreSQL 15 under pgbench: the
// agent SIGKILLed during uploads 50 times, the store gone for 2 minutes,
// the store answering errors. Afterwards every segment PostgreSQL archived
// is in the store, without a gap, each one intact, and the spool is empty.
func TestWALSurvivesKillsOutagesAndErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes long")
	}
	ctx := context.Background()
	node := lab.WALSource + "-fault"
	root := theLab.NodeRoot("agent-1")
	spool := filepath.Join(root, "var", "lib", "dr-wal", node)
	pgdata := filepath.Join(root, "var", "lib", "postgresql", "fault")
	for _, d := range []string{spool, pgdata} {
		os.RemoveAll(d)
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if u, err := user.Lookup("postgres"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(spool, uid, gid)
	}
	port := freePort(t)
	if err := theLab.StartPostgres(ctx, "postgres-fault", pgdata, port, spool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess("postgres-fault"); os.RemoveAll(pgdata); os.RemoveAll(spool) })
	pgEnv := []string{"PGPORT=" + strconv.Itoa(port)}
	sql := func(q string) string {
		t.Helper()
		bin, _ := lab.PGBin("psql")
		cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q)
		cmd.Env = append(append(os.Environ(), theLab.Env()...), pgEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v\n%s", q, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	faults := newS3Faults(t, labEnv(t, "DR_S3_ENDPOINT"))
	cfg, err := theLab.AgentConfig("agent-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NodeName = "wal-fault"
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.MetricsAddress = "off"
	cfg.StateDir = t.TempDir()
	cfg.Store.Endpoint = "http://" + faults.addr
	cfg.WAL.Sources = []agentconfig.WALSource{{Name: node, Spool: spool, Concurrency: 4, SpoolWarnFreeBytes: 1}}
	start := func() {
		t.Helper()
		if err := theLab.StartAgent(ctx, "wal-fault", cfg); err != nil {
			t.Fatal(err)
		}
	}
	start()
	t.Cleanup(func() { theLab.StopProcess("wal-fault") })

	// pgbench writes, and WAL is switched often, so segments keep coming.
	bench, _ := lab.PGBin("pgbench")
	init := exec.Command(bench, "-i", "-s", "2", "-q")
	init.Env = append(append(os.Environ(), theLab.Env()...), pgEnv...)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		run := exec.Command(bench, "-T", "100000", "-c", "2", "-n")
		run.Env = append(append(os.Environ(), theLab.Env()...), pgEnv...)
		_ = run.Start()
		<-stop
		run.Process.Kill()
		run.Wait()
	}()
	go func() {
		defer wg.Done()
		bin, _ := lab.PGBin("psql")
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			cmd := exec.Command(bin, "-X", "-c", "SELECT pg_switch_wal()")
			cmd.Env = append(append(os.Environ(), theLab.Env()...), pgEnv...)
			_ = cmd.Run()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// 50 SIGKILLs, each while uploads are in flight.
	agentArg := filepath.Join(theLab.Dir, "extra-agents", "wal-fault")
	for i := range 50 {
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		if pids := lab.KillWithArg(agentArg); len(pids) == 0 {
			t.Fatalf("kill %d: the agent was not running", i)
		}
		start()
	}
	t.Logf("after 50 kills: %s archived by PostgreSQL", sql("SELECT archived_count FROM pg_stat_archiver"))
	// The last restart listens at once; it answers once it is up.
	up := time.Now()
	for {
		r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + cfg.Listen}, "wal", "status", node, "-o", "json")
		if r.code == 0 {
			t.Logf("the restarted agent answered after %s", time.Since(up).Round(time.Millisecond))
			break
		}
		if time.Since(up) > 30*time.Second {
			t.Fatalf("the restarted agent does not answer wal status after 30 s: exit %d\n%s", r.code, r.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The store gone for (at least) 2 minutes: the backlog grows, in
	// sight. It comes back once status has shown 10 files waiting and
	// the store's error, however long pgbench takes to make them.
	faults.down.Store(true)
	outage := time.Now()
	for {
		st := walFaultStatus(t, cfg.Listen, node)
		if st.BacklogFiles >= 10 && st.LastError != "" && time.Since(outage) >= 2*time.Minute {
			break
		}
		if time.Since(outage) > 5*time.Minute {
			t.Fatalf("5 minutes without the store: status shows backlog %d, error %q; want 10 files or more and the error", st.BacklogFiles, st.LastError)
		}
		time.Sleep(2 * time.Second)
	}
	faults.down.Store(false)

	// The store answering errors: a third of the requests fail.
	faults.errRate.Store(33)
	time.Sleep(20 * time.Second)
	faults.errRate.Store(0)

	close(stop)
	wg.Wait()
	last := sql("SELECT pg_walfile_name(pg_switch_wal())")
	sql("SELECT pg_switch_wal()")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		entries, _ := os.ReadDir(spool)
		archived := sql("SELECT last_archived_wal FROM pg_stat_archiver")
		if len(entries) == 0 && archived >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool not drained after 3 minutes: %d files left", len(entries))
		}
		time.Sleep(500 * time.Millisecond)
	}
	lastArchived := sql("SELECT last_archived_wal FROM pg_stat_archiver")
	if failed := sql("SELECT failed_count FROM pg_stat_archiver"); failed != "0" {
		t.Errorf("PostgreSQL's archive_command failed %s times", failed)
	}

	store := labStore(t)
	a, err := walobj.ListArchived(ctx, store, node)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Gaps) != 0 || a.Newest < lastArchived {
		t.Fatalf("archive: %d files, newest %s (PostgreSQL archived up to %s), gaps %v", a.Files, a.Newest, lastArchived, a.Gaps)
	}
	objs, _ := store.List(ctx, "wal/"+node+"/00000001/")
	first := strings.TrimSuffix(filepath.Base(objs[0].Key), walobj.ObjectSuffix)
	if first > "000000010000000000000002" {
		t.Errorf("the archive starts at %s: the first segments were lost", first)
	}
	// Every object is intact: what a cut-off upload would have left is
	// never there.
	id, err := theLab.SnapshotIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		name := strings.TrimSuffix(filepath.Base(o.Key), walobj.ObjectSuffix)
		if err := walobj.Fetch(ctx, store, node, name, filepath.Join(t.TempDir(), name), id); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	t.Logf("%d WAL files archived through 50 kills, a 2-minute outage and 20 s of errors; no gaps", a.Files)
}

func walFaultStatus(t *testing.T, addr, source string) printers.WALSource {
	t.Helper()
	r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + addr}, "wal", "status", source, "-o", "json")
	var l printers.WALSourceList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 {
		t.Fatalf("wal status %s: exit %d %v\n%s\n%s", source, r.code, err, r.stdout, r.stderr)
	}
	return l.Items[0]
}

// A spool filling up is reported before PostgreSQL's archiving fails: on
// a small file system, status says LOW, exits 1 and names it.
func TestWALSpoolFillingIsWarned(t *testing.T) {
	spool := filepath.Join(theLab.NodeRoot("agent-1"), "var", "lib", "dr-wal", "small")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", spool).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", spool).Run(); os.RemoveAll(spool) })
	faults := newS3Faults(t, labEnv(t, "DR_S3_ENDPOINT"))
	faults.down.Store(true) // nothing leaves the spool
	addr, metrics := walAgent(t, "wal-small", func(c *agentconfig.Config) {
		c.Store.Endpoint = "http://" + faults.addr
		c.WAL.Sources = []agentconfig.WALSource{{Name: "small", Spool: spool, SpoolWarnFreeBytes: 24 << 20}}
	})

	segment := func(name string) []byte { return walobjtest.Segment(name, 7299, 16<<20, 0) }
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("0000000100000000000000%02X", i)
		if err := os.WriteFile(filepath.Join(spool, "."+name+".tmp"), segment(name), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(filepath.Join(spool, "."+name+".tmp"), filepath.Join(spool, name))
	}
	// 32 of 64 MiB used: 32 MiB free, above the 24 MiB warning.
	if st := walFaultStatus(t, addr, "small"); st.SpoolLow {
		t.Errorf("spool LOW with %d bytes free", st.FreeBytes)
	}
	os.WriteFile(filepath.Join(spool, "000000010000000000000003"), segment("000000010000000000000003"), 0o600)
	st := walFaultStatus(t, addr, "small")
	if !st.SpoolLow || st.BacklogFiles != 3 {
		t.Fatalf("16 MiB free of 64: status %+v; want LOW and 3 files waiting", st)
	}
	r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + addr}, "wal", "status", "small")
	if r.code != 1 || !strings.Contains(r.stderr, "spool") || !strings.Contains(r.stdout, "LOW") {
		t.Errorf("wal status with a low spool: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	waitMetric(t, metrics, `dr_wal_spool_low{source="small"}`, 1, "dr_wal_spool_low never went to 1")
}

// walAgent runs an extra agent for node "wal-fault" (as kubectl dr and
// walFaultStatus name it), configured by mutate, with metrics on; it
// returns the agent's address and metrics port.
func walAgent(t *testing.T, name string, mutate func(*agentconfig.Config)) (string, int) {
	t.Helper()
	metrics := freePort(t)
	env := startExtraAgent(t, name, "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "wal-fault"
		c.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", metrics)
		mutate(c)
	})
	return strings.TrimPrefix(env[0], "KUBECTL_DR_AGENTS=agent-1="), metrics
}

// A segment missing from the store is a gap: status names it and exits 1,
// and the metric counts it.
func TestWALGapInTheStoreIsReported(t *testing.T) {
	store := labStore(t)
	ctx := context.Background()
	enc, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range []string{"000000010000000000000001", "000000010000000000000003"} {
		var obj bytes.Buffer
		if err := enc.Encode(&obj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, walobj.Key("gappy", seg), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		objs, _ := store.List(ctx, "wal/gappy/")
		for _, o := range objs {
			store.Delete(ctx, o.Key)
		}
	})
	addr, metrics := walAgent(t, "wal-gappy", func(c *agentconfig.Config) {
		c.WAL.Sources = []agentconfig.WALSource{{Name: "gappy", Spool: t.TempDir()}}
	})
	r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + addr}, "wal", "status", "gappy")
	if r.code != 1 || !strings.Contains(r.stderr, "000000010000000000000002") {
		t.Errorf("wal status with a gap: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	waitMetric(t, metrics, `dr_wal_store_gaps{source="gappy"}`, 1, "dr_wal_store_gaps never showed the gap")
}
