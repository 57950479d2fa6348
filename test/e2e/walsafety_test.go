package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// scratchPostgres starts one more real PostgreSQL on agent-1's node
// root, archiving into a spool of its own, initialised by init (nil:
// initdb's defaults); it returns the data directory, the spool and a
// psql for it.
func scratchPostgres(t *testing.T, name string, init func(pgdata string)) (pgdata, spool string, port int, sql func(string) string) {
	t.Helper()
	root := theLab.NodeRoot("agent-1")
	spool = filepath.Join(root, "var", "lib", "dr-wal", name)
	pgdata = filepath.Join(root, "var", "lib", "postgresql", name)
	for _, d := range []string{spool, pgdata} {
		os.RemoveAll(d)
		if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup("postgres"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(spool, uid, gid)
	}
	if init != nil {
		init(pgdata)
	}
	port = freePort(t)
	if err := theLab.StartPostgres(context.Background(), "postgres-"+name, pgdata, port, spool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess("postgres-" + name); os.RemoveAll(pgdata); os.RemoveAll(spool) })
	sql = func(q string) string {
		t.Helper()
		bin, _ := lab.PGBin("psql")
		cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q)
		cmd.Env = append(append(os.Environ(), theLab.Env()...), "PGPORT="+strconv.Itoa(port))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q on %s: %v\n%s", q, name, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	return pgdata, spool, port, sql
}

// walStatusOf is source's row of node in wal status, whatever its exit
// code (a refusal makes it 1); env points kubectl dr at extra agents.
func walStatusOf(t *testing.T, env []string, source, node string) printers.WALSource {
	t.Helper()
	r := kubectlDR(t, env, "wal", "status", source, "-o", "json")
	var l printers.WALSourceList
	// -o json prints the list, then an error event on failure.
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("wal status %s: exit %d %v\n%s\n%s", source, r.code, err, r.stdout, r.stderr)
	}
	for _, it := range l.Items {
		if it.Node == node {
			return it
		}
	}
	t.Fatalf("wal status %s: no row of node %s\n%s", source, node, r.stdout)
	return printers.WALSource{}
}

// waitWAL polls wal status until ok says yes, for up to a minute.
func waitWAL(t *testing.T, what string, status func() printers.WALSource, ok func(printers.WALSource) bool) printers.WALSource {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute; wal status %+v", what, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// landInSpool copies data into a spool the way archive_command does.
func landInSpool(t *testing.T, spool, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(spool, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
		t.Fatal(err)
	}
}

// The proof of archive safety, with real databases: pg-main's
// first segment claimed the source for its database; a second database
// archiving under the same source name is refused (its segment kept in
// its spool, the reason in wal status, the refusal counted) and pg-main's
// history is intact; a segment PostgreSQL archives again with the same
// bytes is accepted, other bytes under an archived name are refused.
func TestWALSourceRefusesAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	psql(t, "CREATE TABLE IF NOT EXISTS safety_e2e (v text)")
	psql(t, "INSERT INTO safety_e2e SELECT md5(i::text) FROM generate_series(1, 1000) i")
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	waitWAL(t, "pg-main's segment "+last+" shipped", func() printers.WALSource { return walStatus(t) }, func(st printers.WALSource) bool {
		return st.Newest >= last && st.BacklogFiles == 0
	})
	mainID := psql(t, "SELECT system_identifier FROM pg_control_system()")
	sys, err := walobj.ReadSystem(ctx, store, lab.WALSource)
	if err != nil || sys.SystemID != mainID || sys.SegmentSize != 16<<20 {
		t.Fatalf("wal/%s/system.json: %+v, %v; want system %s with 16 MB segments", lab.WALSource, sys, err, mainID)
	}
	before, err := store.List(ctx, "wal/"+lab.WALSource+"/")
	if err != nil {
		t.Fatal(err)
	}

	// A second database, configured with pg-main's source name.
	_, spool, _, sql := scratchPostgres(t, "intruder", nil)
	otherID := sql("SELECT system_identifier FROM pg_control_system()")
	addr, metrics := walAgent(t, "wal-intruder", func(c *agentconfig.Config) {
		c.WAL.Sources = []agentconfig.WALSource{{Name: lab.WALSource, Spool: spool}}
	})
	sql("CREATE TABLE other (v int)")
	seg := sql("SELECT pg_walfile_name(pg_switch_wal())")
	status := func() printers.WALSource {
		return walStatusOf(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + addr}, lab.WALSource, "wal-fault")
	}
	mainStatus := func() printers.WALSource { return walStatusOf(t, nil, lab.WALSource, "server-1") }
	st := waitWAL(t, "the intruder's segment refused", status, func(st printers.WALSource) bool { return st.LastError != "" })
	want := fmt.Sprintf("is from database system %s but wal/%s holds %s: another database archives into this source; give it its own source name", otherID, lab.WALSource, mainID)
	if !strings.Contains(st.LastError, want) {
		t.Errorf("wal status error %q, want it to say %q", st.LastError, want)
	}
	if _, err := os.Stat(filepath.Join(spool, seg)); err != nil {
		t.Errorf("the refused segment %s is not kept in the spool: %v", seg, err)
	}
	if st.BacklogFiles == 0 {
		t.Errorf("wal status shows no backlog with a refused segment: %+v", st)
	}
	r := kubectlDR(t, []string{"KUBECTL_DR_AGENTS=wal-fault=" + addr}, "wal", "status", lab.WALSource)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "another database archives into this source") {
		t.Errorf("wal status table with a refusal: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if v := metricValue(getMetrics(t, metrics), `dr_wal_refused_total{source="`+lab.WALSource+`"}`); v < 1 {
		t.Errorf("dr_wal_refused_total = %v, want the refusal counted", v)
	}
	after, err := store.List(ctx, "wal/"+lab.WALSource+"/")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, o := range after {
		sizes[o.Key] = o.Size
	}
	for _, o := range before {
		if sizes[o.Key] != o.Size {
			t.Errorf("%s: %d bytes before the intruder, %d after", o.Key, o.Size, sizes[o.Key])
		}
	}
	if sys, err := walobj.ReadSystem(ctx, store, lab.WALSource); err != nil || sys.SystemID != mainID {
		t.Errorf("system record after the intruder: %+v, %v", sys, err)
	}
	// pg-main's own segment of the intruder's name, if it has one, is
	// still pg-main's.
	id, err := theLab.SnapshotIdentity()
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), seg)
	if err := walobj.Fetch(ctx, store, lab.WALSource, seg, dest, id); err == nil {
		data, _ := os.ReadFile(dest)
		if h, err := walobj.ParsePageHeader(data); err != nil || strconv.FormatUint(h.SystemID, 10) != mainID {
			t.Errorf("the archive's %s is not pg-main's any more: %+v, %v", seg, h, err)
		}
	}

	// pg-main's last segment archived again, as PostgreSQL does when it
	// is not sure: accepted, the spool drains, no error.
	same := filepath.Join(t.TempDir(), last)
	if err := walobj.Fetch(ctx, store, lab.WALSource, last, same, id); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(same)
	landInSpool(t, theLab.WALSpool(), last, data)
	waitWAL(t, "the same segment again accepted", mainStatus, func(st printers.WALSource) bool {
		_, err := os.Stat(filepath.Join(theLab.WALSpool(), last))
		return os.IsNotExist(err) && st.LastError == ""
	})
	// Other bytes under that name: refused, the archive keeps its own.
	other := bytes.Clone(data)
	other[len(other)/2] ^= 0xff
	landInSpool(t, theLab.WALSpool(), last, other)
	t.Cleanup(func() { os.Remove(filepath.Join(theLab.WALSpool(), last)) })
	st = waitWAL(t, "other bytes refused", mainStatus, func(st printers.WALSource) bool { return st.LastError != "" })
	if !strings.Contains(st.LastError, last+" in the spool differs from the "+last+" the archive holds") {
		t.Errorf("wal status error %q", st.LastError)
	}
	check := filepath.Join(t.TempDir(), "check")
	if err := walobj.Fetch(ctx, store, lab.WALSource, last, check, id); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(check); !bytes.Equal(got, data) {
		t.Error("the archive's segment was replaced by other bytes")
	}
	os.Remove(filepath.Join(theLab.WALSpool(), last))
	waitWAL(t, "status to clear once the file is removed", mainStatus, func(st printers.WALSource) bool { return st.LastError == "" })
}

// A base backup whose WAL range has a segment the archive cannot take
// (another object holds its name) is not recorded: pg basebackup fails
// naming the segment, pg ls has nothing new.
func TestPostgresBaseBackupWithASegmentMissingIsNotRecorded(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	list := func() []*basebackup.BaseBackup {
		l, _, err := basebackup.List(ctx, store, lab.WALSource)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := len(list())
	psql(t, "CREATE TABLE IF NOT EXISTS missing_e2e (v text)")
	psql(t, "INSERT INTO missing_e2e SELECT md5(i::text) FROM generate_series(1, 1000) i")
	// pg_backup_start switches to the next segment and starts there: an
	// object of another database already holds that segment's name.
	next := psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn() + 16777216)")
	enc, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	var obj bytes.Buffer
	if err := enc.Encode(&obj, walobjtest.Segment(next, 1234567890, 16<<20, 0)); err != nil {
		t.Fatal(err)
	}
	key := walobj.Key(lab.WALSource, next)
	if _, err := store.Put(ctx, key, &obj, int64(obj.Len())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Delete(ctx, key)
		// The real segment ships on the shipper's next try.
		waitWAL(t, "pg-main's spool to drain after the cleanup", func() printers.WALSource { return walStatusOf(t, nil, lab.WALSource, "server-1") }, func(st printers.WALSource) bool {
			return st.BacklogFiles == 0 && st.LastError == ""
		})
	})

	r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource)
	if r.code != 1 || !strings.Contains(r.stderr, "is not recorded") || !strings.Contains(r.stderr, next) {
		t.Errorf("pg basebackup with segment %s held by another object: exit %d\n%s\n%s", next, r.code, r.stdout, r.stderr)
	}
	t.Logf("pg basebackup: %s", strings.TrimSpace(r.stderr))
	if n := len(list()); n != before {
		t.Errorf("%d base backups recorded, want %d (none new)", n, before)
	}
	r = kubectlDR(t, nil, "pg", "ls", lab.WALSource, "-o", "json")
	var listed printers.BaseBackupList
	if err := json.NewDecoder(strings.NewReader(r.stdout)).Decode(&listed); r.code != 0 || err != nil || len(listed.Items) != before {
		t.Errorf("pg ls: exit %d, %v, %d items, want %d\n%s", r.code, err, len(listed.Items), before, r.stderr)
	}
}

// A cluster initialised with --wal-segsize=64 whose WAL crosses a log id
// (...3F, then 1/00): it ships with no false gaps, a base backup of it is
// recorded, and it restores and replays.
func TestPostgres64MBSegmentsShipAndRestore(t *testing.T) {
	pgdata, spool, port, sql := scratchPostgres(t, "pg64", func(pgdata string) {
		if err := theLab.InitPostgres(context.Background(), pgdata, "--wal-segsize=64"); err != nil {
			t.Fatal(err)
		}
		// Start two segments before the end of log id 0.
		if _, err := lab.RunPostgresTool(context.Background(), "pg_resetwal", "-l", "00000001000000000000003E", "-D", pgdata); err != nil {
			t.Fatal(err)
		}
	})
	const source = "pg-64"
	env := startExtraAgent(t, "pg64", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "pg64"
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		c.WAL.Sources = []agentconfig.WALSource{{
			Name: source, Spool: spool, PGData: pgdata,
			Connection: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port),
		}}
	})
	env = []string{strings.Replace(env[0], "=agent-1=", "=pg64=", 1)}
	status := func() printers.WALSource {
		r := kubectlDR(t, env, "wal", "status", source, "-o", "json")
		var l printers.WALSourceList
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 {
			t.Fatalf("wal status %s: exit %d %v\n%s\n%s", source, r.code, err, r.stdout, r.stderr)
		}
		return l.Items[0]
	}
	sql("CREATE TABLE big (id int, v text)")
	sql("INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 5000) i")
	if r := kubectlDR(t, env, "pg", "basebackup", source); r.code != 0 {
		t.Fatalf("pg basebackup of a 64 MB-segment cluster: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	sql("INSERT INTO big SELECT i, md5(i::text) FROM generate_series(5001, 7000) i")
	var last string
	for range 3 {
		sql("INSERT INTO big VALUES (0, 'switch')")
		last = sql("SELECT pg_walfile_name(pg_switch_wal())")
	}
	if last < "000000010000000100000000" {
		t.Fatalf("the WAL did not cross log id 0 (last %s)", last)
	}
	st := waitWAL(t, "WAL up to "+last+" shipped", status, func(st printers.WALSource) bool { return st.Newest >= last && st.BacklogFiles == 0 })
	if len(st.Gaps) != 0 || st.LastError != "" {
		t.Errorf("wal status of a 64 MB-segment source: gaps %v, error %q; want none", st.Gaps, st.LastError)
	}
	r := kubectlDR(t, env, "wal", "status", source)
	if r.code != 0 {
		t.Errorf("wal status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rows := sql("SELECT count(*) FROM big")

	target := filepath.Join(theLab.NodeRoot("agent-1"), "pitr-64", "main")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(target)) })
	r = kubectlDR(t, env, "pg", "restore", source, "--latest", "--target-dir", target, "--node", "pg64", "--verify")
	if r.code != 0 || !strings.Contains(r.stdout, "public.big\t"+rows+" rows") {
		t.Errorf("pg restore --verify of a 64 MB-segment cluster (want %s rows): exit %d\n%s\n%s", rows, r.code, r.stdout, r.stderr)
	}
}

// A data directory with a file restic cannot read (restic's exit 3):
// the base backup fails naming the file, and nothing is recorded. The
// file is /proc/1/mem bound over one in the data directory: even root
// may not open it.
func TestPostgresBaseBackupWithAnUnreadableFileIsNotRecorded(t *testing.T) {
	pgdata, spool, port, sql := scratchPostgres(t, "pg-unreadable", nil)
	bad := filepath.Join(pgdata, "unreadable")
	if err := os.WriteFile(bad, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", "/proc/1/mem", bad).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount an unreadable file here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", bad).Run() })
	const source = "pg-unreadable"
	env := startExtraAgent(t, "pg-unreadable", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "pg-unreadable"
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		c.WAL.Sources = []agentconfig.WALSource{{
			Name: source, Spool: spool, PGData: pgdata,
			Connection: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port),
		}}
	})
	env = []string{strings.Replace(env[0], "=agent-1=", "=pg-unreadable=", 1)}
	sql("CREATE TABLE t (v int)")
	r := kubectlDR(t, env, "pg", "basebackup", source)
	if r.code != 1 || !strings.Contains(r.stderr, "restic could not read 1 file(s)") || !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, "not recorded") {
		t.Errorf("pg basebackup with an unreadable file: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("pg basebackup: %s", strings.TrimSpace(r.stderr))
	list, _, err := basebackup.List(context.Background(), labStore(t), source)
	if err != nil || len(list) != 0 {
		t.Errorf("base backups of %s: %d, %v; want none recorded", source, len(list), err)
	}
	// Fixed as the error says, the next one is recorded.
	if out, err := exec.Command("umount", bad).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if r := kubectlDR(t, env, "pg", "basebackup", source); r.code != 0 {
		t.Errorf("pg basebackup once the file is readable: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if list, _, _ := basebackup.List(context.Background(), labStore(t), source); len(list) != 1 {
		t.Errorf("%d base backups of %s recorded, want 1", len(list), source)
	}
}
