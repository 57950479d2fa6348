package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
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
	psql(t, "INSERT INTO targets_e2e SELECT g, 'd' FROM generate_series(1, 160) g")                                            // 310
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
