package kvsnap

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// kineDB writes a SQLite file with kine's table and rows, as kine writes
// them: a row per write, id the revision.
func kineDB(t testing.TB, rows [][]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER,
		create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO kine (name, created, deleted, create_revision, value) VALUES (?, ?, ?, ?, ?)`, r...); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// The newest row of every name, deletions and kine's own rows left out,
// in etcd's key order, with etcd's revisions.
func TestEachReadsKinesTable(t *testing.T) {
	path := kineDB(t, [][]any{
		{"compact_rev_key", 1, 0, 0, []byte("")},                 // 1
		{"/registry/configmaps/a/one", 1, 0, 0, []byte("v1")},    // 2
		{"/registry/configmaps/a/two", 1, 0, 0, []byte("two")},   // 3
		{"/registry/configmaps/a/one", 0, 0, 2, []byte("v2")},    // 4
		{"/registry/configmaps/a/two", 0, 1, 3, []byte("two")},   // 5: deleted
		{"/registry/secrets/a/s", 1, 0, 0, []byte("secret")},     // 6
		{"/registry/configmaps/a/Z", 1, 0, 0, []byte("upper")},   // 7
		{"/registry/configmaps/a/two", 1, 0, 0, []byte("again")}, // 8: created anew
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type got struct {
		key, value  string
		create, mod int64
	}
	var all []got
	rev, err := s.Each("/registry/configmaps/", func(kv KeyValue) error {
		all = append(all, got{string(kv.Key), string(kv.Value), kv.CreateRevision, kv.ModRevision})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"/registry/configmaps/a/Z", "upper", 7, 7},
		{"/registry/configmaps/a/one", "v2", 2, 4},
		{"/registry/configmaps/a/two", "again", 8, 8},
	}
	if rev != 8 || len(all) != len(want) {
		t.Fatalf("revision %d, keys %+v; want 8 and %+v", rev, all, want)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("key %d: %+v, want %+v", i, all[i], want[i])
		}
	}
	n := 0
	if _, err := s.Each("", func(kv KeyValue) error { n++; return nil }); err != nil || n != 4 {
		t.Errorf("every key: %d (%v), want 4 (kine's compact_rev_key is not one)", n, err)
	}
	stop := errors.New("stop")
	if _, err := s.Each("", func(KeyValue) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("the callback's error: %v", err)
	}
}

func TestOpenRefusesASQLiteFileWithoutKinesTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE notes (x TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path); !errors.Is(err, ErrNotSnapshot) {
		t.Errorf("open a SQLite file without kine's table: %v, want ErrNotSnapshot", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open a missing file: %v", err)
	}
}
