package drill

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// A SQLite (kine) snapshot taken by the agent's own save: the etcd part
// copies it, checks its integrity and counts its keys per resource type
// at the recorded revision; it says it did not serve it.
func TestEtcdPartSQLite(t *testing.T) {
	dir := t.TempDir()
	layout := etcdsnap.Layout{DataDir: filepath.Join(dir, "k3s")}
	if err := os.MkdirAll(filepath.Dir(layout.StateDB()), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+layout.StateDB()+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`,
		`CREATE INDEX kine_name_index ON kine (name)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	put := func(name string, deleted int) {
		if _, err := db.Exec(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) VALUES (?, 0, ?, 0, 0, 0, ?)`, name, deleted, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		put(fmt.Sprintf("/registry/configmaps/ns/cm-%d", i%10), 0)
		put(fmt.Sprintf("/registry/secrets/ns/s-%d", i), 0)
	}
	put("/registry/secrets/ns/s-0", 1) // deleted
	store := fileStore(t, filepath.Join(dir, "store"))
	s := &etcdsnap.Snapshotter{Node: "server-1", Layout: layout, Store: store, ClusterID: "c1", StateDir: filepath.Join(dir, "agent")}
	snap, err := s.Save(context.Background(), etcdsnap.SaveRequest{Name: "sqlite-drill"})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Datastore != dbsnap.DatastoreSQLite {
		t.Fatalf("datastore %q", snap.Datastore)
	}
	e := &Engine{Node: "server-1", StateDir: filepath.Join(dir, "state"), Store: store}
	res, err := e.RunEtcd(context.Background(), "drill-sqlite", snap, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("sqlite part failed: %q %+v", res.Problems, res.Steps)
	}
	if res.Counts[CountSnapshot+"configmaps"] != 10 || res.Counts[CountSnapshot+"secrets"] != 29 {
		t.Errorf("counts %v, want 10 configmaps and 29 secrets", res.Counts)
	}
	var start string
	for _, st := range res.Steps {
		if st.Name == "start" {
			start = st.Detail
		}
	}
	if !strings.Contains(start, "not served: ") {
		t.Errorf("start step %q does not say it was not served", start)
	}
	if left, _ := os.ReadDir(filepath.Join(e.StateDir, "drill")); len(left) > 0 {
		t.Errorf("scratch left: %v", left)
	}
}

// A scheduled drill's notes name the layers with nothing to rehearse and
// the nodes the store knows without a file snapshot.
func TestNothingToRehearse(t *testing.T) {
	in := recoveryplan.Inputs{Snapshots: []*dbsnap.Snapshot{{Name: "s", Node: "server-1"}, {Name: "t", Node: "server-2"}}}
	plan := &recoveryplan.Plan{Parts: []recoveryplan.Part{{Layer: recoveryplan.LayerEtcd, What: "s"}, {Layer: recoveryplan.LayerFiles, Node: "server-1"}}}
	got := strings.Join(NothingToRehearse(in, plan), "\n")
	want := "nothing to rehearse: no postgres part (the store holds nothing of that layer)\nnothing to rehearse: no bucket part (the store holds nothing of that layer)\nnothing to rehearse: node server-2 has no file snapshot in the store"
	if got != want {
		t.Errorf("notes:\n%s\nwant\n%s", got, want)
	}
}
