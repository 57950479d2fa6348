package cmd_test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// kineServer lays out a k3s server on SQLite under a data dir: kine's
// table in server/db/state.db (WAL mode, as kine runs it), no etcd
// member. It returns the open database to write more rows with.
func kineServer(t *testing.T, dataDir string, rows map[string]string) *sql.DB {
	t.Helper()
	path := filepath.Join(dataDir, "server", "db", "state.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`); err != nil {
		t.Fatal(err)
	}
	for k, v := range rows {
		kineWrite(t, db, k, v, false)
	}
	return db
}

func kineWrite(t *testing.T, db *sql.DB, name, value string, deleted bool) {
	t.Helper()
	d := 0
	if deleted {
		d = 1
	}
	if _, err := db.Exec(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) VALUES (?, 0, ?, 0, 0, 0, ?)`, name, d, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// On a k3s server on SQLite, `kubectl dr datastore snapshot save` (the
// etcd verbs' other name) takes an online copy of state.db through the
// server's real agent, and it is listed and previewed like an etcd
// snapshot: the preview reads kine's table in the copy and in the live
// database.
func TestDatastoreSnapshotAndPreviewOnASQLiteServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dataDir := t.TempDir()
	db := kineServer(t, dataDir, map[string]string{
		"/registry/namespaces/kept":        "ns",
		"/registry/configmaps/kept/a":      "v1",
		"/registry/configmaps/kept/doomed": "v1",
	})
	e.agent("server-1", func(c *agentconfig.Config) { c.DataDir = dataDir })

	r := e.run("datastore", "snapshot", "save", "-o", "json")
	if r.code != 0 {
		t.Fatalf("datastore snapshot save: exit %d\n%s", r.code, r.stderr)
	}
	var snap printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if snap.Datastore != dbsnap.DatastoreSQLite || snap.Node != "server-1" || !snap.Uploaded || snap.Revision != 3 {
		t.Fatalf("snapshot %+v: want an uploaded sqlite snapshot of server-1 at kine revision 3", snap.Snapshot)
	}
	if r := e.run("etcd", "snapshot", "ls"); r.code != 0 || !strings.Contains(r.stdout, snap.Name) {
		t.Errorf("etcd snapshot ls: exit %d, no row for %s:\n%s%s", r.code, snap.Name, r.stdout, r.stderr)
	}

	kineWrite(t, db, "/registry/configmaps/kept/doomed", "", true)
	kineWrite(t, db, "/registry/configmaps/kept/a", "v2", false)
	kineWrite(t, db, "/registry/configmaps/kept/new", "v1", false)
	r = e.run("datastore", "restore", snap.Name, "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	var view printers.EtcdRestorePreview
	if err := json.Unmarshal([]byte(r.stdout), &view); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	var row *printers.Impact
	for i := range view.Items {
		if view.Items[i].GroupResource == "configmaps" && view.Items[i].Namespace == "kept" {
			row = &view.Items[i]
		}
	}
	if row == nil {
		t.Fatalf("no configmaps row for kept in %+v", view.Items)
	}
	got := [3]string{strings.Join(row.DisappearNames, ","), strings.Join(row.ReappearNames, ","), strings.Join(row.ChangeNames, ",")}
	if want := [3]string{"new", "doomed", "a"}; got != want {
		t.Errorf("disappear/reappear/change = %v, want %v", got, want)
	}
	if view.LiveRevision != 6 {
		t.Errorf("live revision %d, want kine's newest row 6", view.LiveRevision)
	}
}

// An etcd snapshot is refused on a server on SQLite before anything is
// fetched, saying why.
func TestEtcdSnapshotRefusedOnASQLiteServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dataDir := t.TempDir()
	kineServer(t, dataDir, map[string]string{"/registry/namespaces/kept": "ns"})
	e.agent("server-1", func(c *agentconfig.Config) { c.DataDir = dataDir })
	e.writeSnapshot(&dbsnap.Snapshot{Name: "etcd-server-9-1", Node: "server-9", Revision: 10, Size: 1 << 20, Uploaded: true, Compression: "zstd"})
	r := e.run("etcd", "restore", "etcd-server-9-1", "--dry-run")
	if r.code == 0 || !strings.Contains(r.stderr, "snapshot etcd-server-9-1 is of the etcd datastore and node server-1 keeps its datastore in sqlite") {
		t.Errorf("restore of an etcd snapshot on a SQLite server: exit %d\n%s", r.code, r.stderr)
	}
}
