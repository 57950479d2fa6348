package restorelab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

func psql(t *testing.T, sql string) string {
	t.Helper()
	bin, err := lab.PGBin("psql")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = append(os.Environ(), theLab.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// directDR runs kubectl dr the way recover is run on new hosts: the agents
// named directly, the store from the environment, the cluster id given.
func directDR(t *testing.T, args ...string) labtest.Result {
	t.Helper()
	return labtest.Run(t, theLab, 10*time.Minute, theLab.Bin.KubectlDR, theLab.Env(), append(args, "--cluster-id", theLab.State.ClusterID)...)
}

// waitArchived waits until the WAL source's newest archived segment is
// at least name.
func waitArchived(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := kubectlDR(t, "wal", "status", lab.WALSource, "-o", "json")
		var l printers.WALSourceList
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &l) == nil && len(l.Items) == 1 && l.Items[0].Newest >= name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived within 60s:\n%s%s", name, r.Stdout, r.Stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lineWatcher keeps what a process writes and closes seen once want
// went by.
type lineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func watchFor(want string) *lineWatcher {
	return &lineWatcher{want: want, seen: make(chan struct{})}
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// hasRow reports whether a line of out has the fields in order at its
// start.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), strings.Join(fields, " ")) {
			return true
		}
	}
	return false
}

// A server whose token is not the one that made the snapshot's k3s
// bootstrap data: etcd restore refuses before anything stops, with k3s's
// own words and what to do; etcd keeps running.
func TestEtcdRestoreRefusesAnotherTokenBeforeAnythingStops(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	snap := labtest.SaveSnapshot(t, theLab, "preflight-token")
	n := theLab.EtcdNodes()[1]
	path := filepath.Join(theLab.DataDir(n), "server", "token")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(path, orig, 0o600) })
	if err := os.WriteFile(path, []byte("K10beef::server:not-the-clusters-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("etcd restore:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
	for _, want := range []string{"preflight failed, nothing was stopped", "node " + n + ": token:", k3sboot.RefusedMessage, "--token-from-store"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !hasRow(r.Stdout, n, "token", "failed") || !hasRow(r.Stdout, theLab.EtcdNodes()[0], "token", "ok") {
		t.Errorf("preflight rows: want %s's token failed, the others ok", n)
	}
	for _, m := range theLab.EtcdNodes() {
		if st := etcdmember.Status(t.Context(), theLab.EtcdClient(m)); !st.Healthy {
			t.Errorf("etcd on %s after the refused restore: %v", m, st.Err)
		}
	}
}

// A snapshot taken on a server without its encryption config keeps no
// copy of it: recovering onto new hosts from it is refused at the
// preflight, the Secrets in it being encrypted at rest.
func TestRecoverRefusesASnapshotWithoutItsEncryptionConfig(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	ns := "recover-noenc"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "secret", "generic", "s", "--from-literal=k=v")
	leader := ""
	for _, n := range theLab.EtcdNodes() {
		if etcdmember.Status(t.Context(), theLab.EtcdClient(n)).Leader() {
			leader = n
		}
	}
	enc := filepath.Join(theLab.DataDir(leader), "server", "cred", "encryption-config.json")
	data, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(enc); err != nil {
		t.Fatal(err)
	}
	snap := labtest.SaveSnapshot(t, theLab, "no-encryption-config")
	if err := os.WriteFile(enc, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if snap.Node != leader {
		t.Fatalf("snapshot taken on %s, want the leader %s", snap.Node, leader)
	}
	r := directDR(t, "recover", "--latest", "--dry-run", "--skip-layer", "files", "--skip-layer", "postgres", "--skip-layer", "bucket")
	t.Logf("recover --dry-run:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
	want := fmt.Sprintf("Secret(s) in the snapshot are encrypted at rest (aescbc key %q) and there is no encryption config in the files kept with snapshot %s", "aescbckey", snap.Name)
	for _, w := range []string{"preflight failed, nothing was stopped", want} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if !hasRow(r.Stdout, leader, "encryption-config", "failed") {
		t.Errorf("no failed encryption-config row for %s", leader)
	}
}

// The proof: backups of a cluster (a datastore snapshot and every
// node's files in a backup set, a base backup and WAL of its database), a
// time T, more changes after it; then the old hosts are gone: every
// server's etcd data, server token and encryption config, the files and
// the database's data directory removed, etcd, the API server and
// PostgreSQL stopped (the same store, new data dirs). `kubectl dr recover
// --to T --yes --prune-nodes` in direct mode brings back the objects of
// T's snapshot, the database's rows at T, the files' bytes, runs the
// health check against the recovered database, deletes the old host's
// Node object and prints the RTO. The k3s stand-in plays k3s's cluster
// reset (k3s cannot be built here); the lab's start command brings the
// API server back with the first server, as k3s's does.
func TestRecoverOntoNewHostsToATimeWithK3sStandin(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	check := agentconfig.Check{Name: "recover-rows", Postgres: lab.WALSource, Database: "postgres", Query: "SELECT count(*) FROM recover_e2e", Expect: "5", Timeout: "3m"}
	if err := theLab.SetDrillChecks(t.Context(), []agentconfig.Check{check}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := theLab.SetDrillChecks(context.Background(), nil); err != nil {
			t.Errorf("drop the drill checks: %v", err)
		}
	})
	ns := "recover-e2e"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "kept", "--from-literal=v=1")
	kubectl(t, "-n", ns, "create", "secret", "generic", "db-password", "--from-literal=password=hunter2")
	node := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(node, []byte("apiVersion: v1\nkind: Node\nmetadata:\n  name: old-host-9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "create", "-f", node)

	filesNode := theLab.State.Nodes[1]
	file := filepath.Join(theLab.DataDir(filesNode), "storage", "recover-e2e", "blob.bin")
	want := make([]byte, 300<<10)
	rand.Read(want)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}

	psql(t, "DROP TABLE IF EXISTS recover_e2e; CREATE TABLE recover_e2e (i int)")
	psql(t, "INSERT INTO recover_e2e SELECT generate_series(1, 5)")
	if r := kubectlDR(t, "pg", "basebackup", lab.WALSource); r.Code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := kubectlDR(t, "backup", "create", "recover-e2e"); r.Code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	at := psql(t, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	if t0, err := time.Parse(time.RFC3339Nano, at); err == nil {
		at = t0.UTC().Format(time.RFC3339Nano) // as the plan prints it
	}
	psql(t, "INSERT INTO recover_e2e SELECT generate_series(6, 9)")
	waitArchived(t, psql(t, "SELECT pg_walfile_name(pg_switch_wal())"))
	kubectl(t, "-n", ns, "create", "configmap", "after-t", "--from-literal=v=1")
	if err := os.WriteFile(file, []byte("changed after T"), 0o644); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(theLab.DataDir(theLab.EtcdNodes()[0]), "server", "token"))
	if err != nil {
		t.Fatal(err)
	}

	// The old hosts are gone.
	for _, p := range []string{"kube-apiserver", "postgres"} {
		if err := theLab.StopProcess(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range theLab.EtcdNodes() {
		if err := theLab.StopProcess("etcd-" + n); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{"server/db/etcd", "server/token", "server/cred/encryption-config.json"} {
			if err := os.RemoveAll(filepath.Join(theLab.DataDir(n), rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.RemoveAll(filepath.Dir(file)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(theLab.PGData()); err != nil {
		t.Fatal(err)
	}

	// recover, with the database started again once it is restored (on
	// a real cluster its pod starts when the API server is back).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, theLab.Bin.KubectlDR, "recover", "--to", at, "--yes", "--prune-nodes", "--cluster-id", theLab.State.ClusterID)
	cmd.Env = append(append(os.Environ(), theLab.UserEnv()...), theLab.Env()...)
	stdout, stderr := watchFor(""), watchFor("postgres "+lab.WALSource+": ")
	// k3s must start only once the files are back: the files' restic
	// restore is stopped (SIGSTOP) until k3s's start is held, or (without
	// the hold) until k3s started; the start's time is then compared with
	// the restored file's.
	held := watchFor(": " + "wait-layers-restored started")
	started := watchFor(": start started")
	cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(stderr, held, started)
	since := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	go func() {
		pid := waitProcess(ctx, "restic", "restore", theLab.DataDir(filesNode))
		if pid == 0 {
			return
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Errorf("stop restic restore %d: %v", pid, err)
			return
		}
		t.Logf("restic restore (pid %d) stopped until k3s's start is held or has begun", pid)
		defer syscall.Kill(pid, syscall.SIGCONT)
		select {
		case <-held.seen:
		case <-started.seen:
		case <-ctx.Done():
		}
	}()
	select {
	case <-stderr.seen:
		if err := theLab.UpPostgres(ctx); err != nil {
			t.Errorf("start the restored database: %v", err)
		}
	case err := <-done:
		done <- err
	}
	err = <-done
	t.Logf("kubectl dr recover --to %s --yes --prune-nodes:\n%s\n%s", at, stderr, stdout)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("recover: exit %d", ee.ExitCode())
	}

	out := stdout.String()
	for _, fields := range [][]string{
		{"etcd"},
		{"files", filesNode},
		{"postgres", theLab.State.Nodes[0], lab.WALSource, at},
		{"recover-rows", theLab.State.Nodes[0], "yes", "5", "5"},
	} {
		if !hasRow(out, fields...) {
			t.Errorf("no row %v in the output", fields)
		}
	}
	for _, want := range []string{"Recovery plan (" + at + ")", "recover-e2e-server-", "Stale node old-host-9 deleted (--prune-nodes)", "RTO ", "api-server"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, n := range theLab.EtcdNodes() {
		if !hasRow(out, n, "token", "ok") || !hasRow(out, n, "encryption-config", "ok") {
			t.Errorf("no preflight rows token ok and encryption-config ok for %s", n)
		}
	}

	// What a user checks: the objects of T's snapshot, the rows at T, the
	// files' bytes, the token back, one healthy etcd cluster.
	labtest.WaitConfigMaps(t, theLab, ns, "kept")
	if got := kubectl(t, "-n", ns, "get", "secret", "db-password", "-o", "jsonpath={.data.password}"); got != "aHVudGVyMg==" {
		t.Errorf("secret db-password: %q", got)
	}
	if r := labtest.Run(t, theLab, time.Minute, theLab.Bin.Kubectl, nil, "get", "node", "old-host-9"); r.Code == 0 || !strings.Contains(r.Stderr, "NotFound") {
		t.Errorf("node old-host-9 after --prune-nodes: exit %d %s", r.Code, r.Stderr)
	}
	if got := psql(t, "SELECT count(*) FROM recover_e2e"); got != "5" {
		t.Errorf("rows after recover: %s, want the 5 of T", got)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s after recover: %d bytes (%v), want the %d backed up", file, len(got), err, len(want))
	}
	for _, n := range theLab.EtcdNodes() {
		if got, err := os.ReadFile(filepath.Join(theLab.DataDir(n), "server", "token")); err != nil || !bytes.Equal(got, token) {
			t.Errorf("%s: server/token after recover: %q %v", n, got, err)
		}
	}
	oneHealthyCluster(t)

	// k3s (the stand-in's start) ran after the files were restored.
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	restored := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	actions, err := theLab.HostActions()
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, a := range actions {
		if a.Verb != "start" || a.At.Before(since) {
			continue
		}
		starts++
		if a.At.Before(restored) {
			t.Errorf("k3s started on %s at %s, before the files were restored (%s)", a.Name, a.At.Format(time.RFC3339Nano), restored.Format(time.RFC3339Nano))
		}
	}
	if starts != len(theLab.EtcdNodes()) {
		t.Errorf("%d k3s start(s) during the recovery, want one per server (%d): %+v", starts, len(theLab.EtcdNodes()), actions)
	}
	if !strings.Contains(stderr.String(), "every other layer is restored; k3s starts") {
		t.Errorf("stderr does not say k3s waited for the other layers")
	}
}

// waitProcess waits for a process whose program is named prog, whose
// arguments include arg and mention path; it returns its pid (0 when ctx
// ends first).
func waitProcess(ctx context.Context, prog, arg, path string) int {
	for {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			data, err := os.ReadFile(p)
			if err != nil || len(data) == 0 {
				continue
			}
			args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
			if filepath.Base(args[0]) == prog && slices.Contains(args[1:], arg) && strings.Contains(strings.Join(args, " "), path) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(10 * time.Millisecond):
		}
	}
}
