package etcdsnap

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// kineDB creates state.db the way kine does (its schema, WAL mode) and
// returns a connection that writes it as kine would.
func kineDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`,
		`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func kinePut(t testing.TB, db *sql.DB, name string, value []byte, deleted bool) {
	d := 0
	if deleted {
		d = 1
	}
	var prev int64
	db.QueryRow(`SELECT COALESCE(MAX(id), 0) FROM kine WHERE name = ?`, name).Scan(&prev)
	if _, err := db.Exec(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES (?, 0, ?, 0, ?, 0, ?, NULL)`, name, d, prev, value); err != nil {
		t.Error(err)
	}
}

// The preview's reader sees the newest row of each name and leaves out
// deleted names and kine's own rows.
func TestSQLiteKeysNewestRowPerNameDeletionsHonoured(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := kineDB(t, path)
	kinePut(t, db, "compact_rev_key", []byte("1"), false)
	kinePut(t, db, "/registry/configmaps/a/one", []byte("v1"), false)
	kinePut(t, db, "/registry/configmaps/a/one", []byte("v2"), false)
	kinePut(t, db, "/registry/configmaps/a/gone", []byte("x"), false)
	kinePut(t, db, "/registry/configmaps/a/gone", nil, true)
	c, err := SQLiteKeys{Path: path}.ReadKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Keys) != 1 || c.Revision != 5 {
		t.Fatalf("keys %v at revision %d, want only /registry/configmaps/a/one at 5", c.Keys, c.Revision)
	}
	if got := c.Keys["/registry/configmaps/a/one"]; got != sha256.Sum256([]byte("v2")) {
		t.Errorf("configmap a/one reads as an older row")
	}
}

// Save on a server on SQLite takes an online copy while the database is
// written: the copy is whole (it opens, passes SQLite's integrity check,
// and every key in it holds a value a writer wrote), the record says
// sqlite and the revision, and the store holds it.
func TestSaveSQLiteUnderWritesIsConsistent(t *testing.T) {
	dir := t.TempDir()
	layout := Layout{DataDir: filepath.Join(dir, "k3s")}
	db := kineDB(t, layout.StateDB())
	for i := range 2000 {
		kinePut(t, db, fmt.Sprintf("/registry/configmaps/ns/cm-%d", i%300), []byte(strings.Repeat(fmt.Sprint(i), 100)), false)
	}
	store, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshotter{Node: "server-1", Layout: layout, Store: store, ClusterID: "c1", StateDir: filepath.Join(dir, "state")}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	writes := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			kinePut(t, db, fmt.Sprintf("/registry/configmaps/storm/cm-%d", i%50), []byte(fmt.Sprint("storm-", i)), i%7 == 6)
			writes++
		}
	}()
	snap, err := s.Save(context.Background(), SaveRequest{Name: "on-demand"})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Datastore != dbsnap.DatastoreSQLite || !snap.Uploaded || snap.Revision < 2000 {
		t.Fatalf("snapshot %+v: want an uploaded sqlite snapshot at revision >= 2000", snap)
	}
	if err := CheckSQLite(context.Background(), snap.LocalPath); err != nil {
		t.Fatal(err)
	}
	if err := dbsnap.VerifyLocal(snap.LocalPath, snap); err != nil {
		t.Fatal(err)
	}
	c, err := SQLiteKeys{Path: snap.LocalPath}.ReadKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision != snap.Revision {
		t.Errorf("copy reads at revision %d, record says %d", c.Revision, snap.Revision)
	}
	if len(c.Keys) < 300 {
		t.Errorf("copy has %d keys, want the 300 written before it at least", len(c.Keys))
	}
	// The store's copy is the same bytes.
	back := filepath.Join(dir, "back.db")
	if err := dbsnap.Fetch(context.Background(), store, snap, nil, back); err != nil {
		t.Fatal(err)
	}
	if !IsSQLiteFile(back) {
		t.Errorf("fetched copy is not a SQLite file")
	}
	meta, err := os.ReadFile(filepath.Join(dir, "store", dbsnap.MetaKey("server-1", snap.Name)))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	json.Unmarshal(meta, &rec)
	if rec["datastore"] != "sqlite" {
		t.Errorf("record %s: want datastore sqlite", meta)
	}
	entries, _ := os.ReadDir(layout.SnapshotsDir())
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("temporary %s left in the snapshots dir", e.Name())
		}
	}
	t.Logf("%d writes during the snapshot", writes)
}

// A server with neither etcd nor state.db is refused with what is missing.
func TestSaveRefusesANodeWithoutDatastore(t *testing.T) {
	dir := t.TempDir()
	s := &Snapshotter{Node: "agent-1", Layout: Layout{DataDir: dir}, StateDir: filepath.Join(dir, "state")}
	_, err := s.Save(context.Background(), SaveRequest{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "state.db") {
		t.Fatalf("Save = %v, want a refusal naming state.db", err)
	}
}
