package restoreplan

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// sqlitePlan lays out a k3s server on SQLite (state.db with its WAL
// files) and a restored copy staged beside it, and returns the plan.
func sqlitePlan(t *testing.T, dir string) (*Plan, []byte) {
	t.Helper()
	db := filepath.Join(dir, "server", "db", "state.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range sqliteFiles(db) {
		if err := os.WriteFile(f, []byte("live "+filepath.Base(f)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The restored copy: a real SQLite database with kine's table.
	src := filepath.Join(dir, "snap.db")
	sdb, err := sql.Open("sqlite", "file:"+src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB); INSERT INTO kine (name, value) VALUES ('/registry/namespaces/back', 'x')`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p := &Plan{ID: "plan-sq", Node: "n1", Flavor: "k3s", Role: RoleSQLite, Created: time.Now(), K3sDataDir: dir,
		Snapshot: "s1", SnapshotSHA256: hex.EncodeToString(sum[:]), SnapshotSize: int64(len(data))}
	if err := stageSQLite(context.Background(), p, src); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{StepVerify, StepStop, StepSwapStateDB, StepStart, StepHealthy} {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	return p, data
}

// The swap moves state.db, -wal and -shm aside together and puts the
// verified copy in place; nothing of the old database is left beside it.
func TestSQLiteRestoreMovesTheWALFilesAsideTogether(t *testing.T) {
	dir := t.TempDir()
	p, data := sqlitePlan(t, dir)
	r := &Runner{
		Plans:       Plans{Dir: filepath.Join(dir, "plans")},
		Host:        Commands{StopCommand: []string{"true"}, StartCommand: []string{"true"}},
		KineHealthy: func(context.Context) error { return nil },
	}
	if err := r.Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	db := p.stateDB()
	if got, _ := os.ReadFile(db); string(got) != string(data) {
		t.Errorf("state.db is not the restored copy")
	}
	for _, f := range sqliteFiles(db) {
		if got, err := os.ReadFile(renamed(db, f, ".aside-plan-sq")); err != nil || string(got) != "live "+filepath.Base(f) {
			t.Errorf("%s aside: %q, %v", filepath.Base(f), got, err)
		}
	}
	for _, f := range sqliteFiles(db)[1:] {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s of the old database left beside the restored one: %v", filepath.Base(f), err)
		}
	}
	if p.Steps[2].Detail != db+".aside-plan-sq" {
		t.Errorf("recorded aside %q", p.Steps[2].Detail)
	}
}

// When k3s does not come up on the restored copy, the old files go back
// in place and k3s is started on them; the restored copy is kept apart.
func TestSQLiteRestorePutsEverythingBackWhenTheCopyDoesNotServe(t *testing.T) {
	dir := t.TempDir()
	p, data := sqlitePlan(t, dir)
	starts := 0
	r := &Runner{
		Plans:     Plans{Dir: filepath.Join(dir, "plans")},
		Host:      Commands{StopCommand: []string{"true"}, StartCommand: []string{"sh", "-c", "echo started >> " + filepath.Join(dir, "starts")}},
		KineLimit: time.Nanosecond,
		KineHealthy: func(context.Context) error {
			starts++
			if got, _ := os.ReadFile(p.stateDB()); string(got) == string(data) {
				return errors.New("kine exited: database disk image is malformed")
			}
			return nil
		},
	}
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "the previous database is back in place") {
		t.Fatalf("Run = %v, want the rollback reported", err)
	}
	db := p.stateDB()
	for _, f := range sqliteFiles(db) {
		if got, err := os.ReadFile(f); err != nil || string(got) != "live "+filepath.Base(f) {
			t.Errorf("%s not back: %q, %v", filepath.Base(f), got, err)
		}
	}
	if got, _ := os.ReadFile(db + ".failed-plan-sq"); string(got) != string(data) {
		t.Errorf("the restored copy is not kept at state.db.failed-plan-sq")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "starts")); strings.Count(string(b), "started") != 2 {
		t.Errorf("k3s started %d times, want on the copy, then on the old files", strings.Count(string(b), "started"))
	}
}

// A staged copy that is not what the snapshot's sha256 says is refused
// before anything stops.
func TestSQLiteStageRefusesACopyThatDoesNotMatch(t *testing.T) {
	dir := t.TempDir()
	p, _ := sqlitePlan(t, dir)
	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte("SQLite format 3\x00 but cut short"), 0o600)
	err := stageSQLite(context.Background(), p, bad)
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("stage = %v, want a checksum refusal", err)
	}
	if _, err := os.Stat(sqliteStaging(p.stateDB(), p.ID)); !os.IsNotExist(err) {
		t.Errorf("the refused copy is left staged: %v", err)
	}
}
