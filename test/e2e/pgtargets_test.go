package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// The proof for recovery targets, on the lab's real PostgreSQL:
// rows before a base backup, more rows, a restore point, an LSN, one
// transaction's rows and its xid, more rows; then restores (replayed in a
// scratch instance on another node) to the LSN, the xid (inclusive and
// exclusive), the restore point and the base backup's end each give the
// rows written up to there. The dry run shows the plan and, with a segment
// deleted from the store, names it and fails, as the restore does before
// writing anything; a target before every base backup is refused the same
// way.
func TestPostgresRecoveryTargets(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	psql(t, "CREATE TABLE targets_e2e (id int, step text)")
	psql(t, "INSERT INTO targets_e2e SELECT g, 'before' FROM generate_series(1, 10) g")
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	list, _, err := basebackup.List(ctx, store, lab.WALSource)
	if err != nil || len(list) == 0 {
		t.Fatalf("base backups: %v, %v", list, err)
	}
	bb := list[len(list)-1]
	psql(t, "INSERT INTO targets_e2e SELECT g, 'a' FROM generate_series(1, 20) g") // 30
	psql(t, "SELECT pg_create_restore_point('before-drop')")
	psql(t, "INSERT INTO targets_e2e SELECT g, 'b' FROM generate_series(1, 40) g") // 70
	lsn := psql(t, "SELECT pg_current_wal_lsn()")
	// One transaction of 80 rows, and its id.
	xid := psql(t, "WITH ins AS (INSERT INTO targets_e2e SELECT g, 'c' FROM generate_series(1, 80) g) SELECT txid_current()") // 150
	psql(t, "INSERT INTO targets_e2e SELECT g, 'd' FROM generate_series(1, 160) g")                                           // 310
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}

	root := filepath.Join(theLab.NodeRoot("server-2"), "pgtargets")
	t.Cleanup(func() { os.RemoveAll(root) })
	for i, c := range []struct {
		name string
		args []string
		rows int
	}{
		{"lsn", []string{"--to-lsn", lsn}, 70},
		{"xid", []string{"--to-xid", xid}, 150},
		{"xid exclusive", []string{"--to-xid", xid, "--exclusive"}, 70},
		{"restore point", []string{"--to-name", "before-drop"}, 30},
		{"immediate", []string{"--immediate"}, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(root, fmt.Sprint(i), "main")
			args := append([]string{"pg", "restore", lab.WALSource, "--target-dir", target, "--node", "server-2", "--verify"}, c.args...)
			r := kubectlDR(t, nil, args...)
			want := fmt.Sprintf("public.targets_e2e\t%d rows", c.rows)
			if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "from base backup "+bb.ID) {
				t.Errorf("pg restore %v: want exit 0, %q from base backup %s\nexit %d\n%s\n%s", c.args, want, bb.ID, r.code, r.stdout, r.stderr)
			}
		})
	}

	// The plan: the base backup, every segment present.
	r := kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to-lsn", lsn, "--dry-run")
	t.Logf("pg restore --to-lsn %s --dry-run:\n%s", lsn, r.stdout)
	present := regexp.MustCompile(`WAL: all [1-9][0-9]* segments present`)
	if r.code != 0 || !strings.Contains(r.stdout, "base backup "+bb.ID+": WAL "+bb.StartLSN+".."+bb.StopLSN) || !present.MatchString(r.stdout) {
		t.Errorf("pg restore --dry-run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// One segment of it gone from the store: named, exit 1, and the
	// restore refused with nothing written.
	gone := psql(t, "SELECT pg_walfile_name('"+lsn+"')")
	key := walobj.Key(lab.WALSource, gone)
	rc, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	putBack := func() {
		if _, err := store.Put(ctx, key, strings.NewReader(string(saved)), int64(len(saved))); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(putBack)
	r = kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to-lsn", lsn, "--dry-run")
	if r.code != 1 || !strings.Contains(r.stdout, "WAL: MISSING "+gone) || !strings.Contains(r.stderr, gone+" missing from the store between base backup "+bb.ID) {
		t.Errorf("pg restore --dry-run with %s deleted: want exit 1 naming it\nexit %d\n%s\n%s", gone, r.code, r.stdout, r.stderr)
	}
	refused := filepath.Join(root, "refused", "main")
	r = kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to-lsn", lsn, "--target-dir", refused, "--node", "server-2")
	if r.code != 1 || !strings.Contains(r.stderr, gone+" missing between base backup "+bb.ID+" and the target") {
		t.Errorf("pg restore with %s deleted: want exit 1 naming it\nexit %d\n%s\n%s", gone, r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused restore wrote %s: %v", refused, err)
	}

	// A target before every base backup.
	r = kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to-lsn", "0/1000000", "--target-dir", refused, "--node", "server-2")
	if r.code != 1 || !strings.Contains(r.stderr, "no base backup before LSN 0/1000000: the oldest, ") {
		t.Errorf("pg restore --to-lsn 0/1000000: want exit 1 and no base backup before it\nexit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused restore wrote %s: %v", refused, err)
	}

	// pg ls: the WAL of the source's timeline and its first recoverable point.
	putBack()
	r = kubectlDR(t, nil, "pg", "ls", lab.WALSource)
	if r.code != 0 || !strings.Contains(r.stdout, "TIMELINE") || !strings.Contains(r.stdout, lab.WALSource+": first recoverable point ") {
		t.Errorf("pg ls: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// A timeline: a database (its own source, pg-tl) is restored and the copy
// started archiving into the same spool, as after a failover: it promotes
// to timeline 2 and its history file and WAL reach the store beside the
// original's timeline 1, which goes on too. pg ls shows the branch; the
// dry run follows timeline 1 to the switch, then timeline 2; a restore on
// timeline 2 (the latest) has the copy's rows and one on timeline 1 the
// original's.
func TestPostgresTimelineAfterPromotion(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	pgdata, spool, port, sql := scratchPostgres(t, "pgtl", nil)
	const source = "pg-tl"
	env := startExtraAgent(t, "pgtl", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "pgtl"
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		c.WAL.Sources = []agentconfig.WALSource{{
			Name: source, Spool: spool, PGData: pgdata,
			Connection: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port),
		}}
	})
	env = []string{strings.Replace(env[0], "=agent-1=", "=pgtl=", 1)}
	// The source is this test's: its records and WAL go with it (pg ls of
	// other tests names the sources with base backups).
	t.Cleanup(func() {
		for _, prefix := range []string{"pg/" + source + "/", "wal/" + source + "/"} {
			objs, err := store.List(ctx, prefix)
			if err != nil {
				t.Error(err)
				return
			}
			for _, o := range objs {
				if err := store.Delete(ctx, o.Key); err != nil {
					t.Error(err)
				}
			}
		}
	})
	stored := func(what string, names ...string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for _, n := range names {
			for {
				if _, err := store.Stat(ctx, walobj.Key(source, n)); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s not in the store after a minute", what, n)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
	}
	sql("CREATE TABLE tl (id int, step text)")
	sql("INSERT INTO tl SELECT g, 'base' FROM generate_series(1, 10) g")
	if r := kubectlDR(t, env, "pg", "basebackup", source); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	sql("INSERT INTO tl SELECT g, 'tl1' FROM generate_series(1, 20) g") // 30
	stored("timeline 1 before the fork", sql("SELECT pg_walfile_name(pg_switch_wal())"))

	// The copy, started archiving into the source's spool, promotes.
	copyDir := filepath.Join(theLab.NodeRoot("agent-1"), "pgtl-copy", "main")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(copyDir)) })
	if r := kubectlDR(t, env, "pg", "restore", source, "--latest", "--target-dir", copyDir, "--node", "pgtl"); r.code != 0 {
		t.Fatalf("pg restore for the copy: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	port2 := freePort(t)
	if err := theLab.StartPostgres(ctx, "postgres-pgtl-copy", copyDir, port2, spool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess("postgres-pgtl-copy") })
	sql2 := func(q string) (string, error) {
		bin, _ := lab.PGBin("psql")
		cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q)
		cmd.Env = append(append(os.Environ(), theLab.Env()...), "PGPORT="+strconv.Itoa(port2))
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if out, err := sql2("SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restored copy did not promote in 2 minutes")
		}
		time.Sleep(300 * time.Millisecond)
	}
	must := func(q string) string {
		t.Helper()
		out, err := sql2(q)
		if err != nil {
			t.Fatalf("psql %q on the copy: %v\n%s", q, err, out)
		}
		return out
	}
	must("INSERT INTO tl SELECT g, 'tl2' FROM generate_series(1, 100) g") // 130 on timeline 2
	last2 := must("SELECT pg_walfile_name(pg_switch_wal())")
	if !strings.HasPrefix(last2, "00000002") {
		t.Fatalf("the promoted copy writes %s, want timeline 2", last2)
	}
	sql("INSERT INTO tl SELECT g, 'tl1-after' FROM generate_series(1, 5) g") // 35 on timeline 1
	last1 := sql("SELECT pg_walfile_name(pg_switch_wal())")
	stored("both timelines", "00000002.history", last2, last1)

	r := kubectlDR(t, env, "pg", "ls", source)
	t.Logf("pg ls %s:\n%s", source, r.stdout)
	if r.code != 0 || !strings.Contains(r.stdout, "from 1 at ") {
		t.Errorf("pg ls: want timeline 2 branched from 1\nexit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = kubectlDR(t, env, "pg", "restore", source, "--latest", "--dry-run", "-o", "json")
	var plan printers.PGRestorePlan
	if err := json.Unmarshal([]byte(r.stdout), &plan); r.code != 0 || err != nil || plan.Timeline != 2 || len(plan.Steps) != 2 ||
		plan.Steps[0].Timeline != 1 || plan.Steps[1].Timeline != 2 || plan.Steps[1].LastSegment != last2 || len(plan.Missing) != 0 {
		t.Errorf("dry run --latest: want timeline 1 then 2 up to %s: %v\nexit %d\n%s\n%s", last2, err, r.code, r.stdout, r.stderr)
	}
	root := filepath.Join(theLab.NodeRoot("agent-1"), "pgtl-restores")
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, c := range []struct {
		timeline string
		rows     int
	}{{"latest", 130}, {"2", 130}, {"1", 35}} {
		target := filepath.Join(root, c.timeline, "main")
		r := kubectlDR(t, env, "pg", "restore", source, "--latest", "--timeline", c.timeline, "--target-dir", target, "--node", "pgtl", "--verify")
		want := fmt.Sprintf("public.tl\t%d rows", c.rows)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("pg restore --timeline %s: want %q\nexit %d\n%s\n%s", c.timeline, want, r.code, r.stdout, r.stderr)
		}
	}
	r = kubectlDR(t, env, "pg", "restore", source, "--latest", "--timeline", "3", "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, "timeline 3 not in the archive: timelines 1, 2") {
		t.Errorf("--timeline 3: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
