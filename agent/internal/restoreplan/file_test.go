package restoreplan

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/snapfile"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// realSnapshotFile is what etcdctl snapshot save writes, from a real
// (embedded) member.
func realSnapshotFile(t *testing.T) []byte {
	t.Helper()
	e, cli := startEtcd(t, filepath.Join(t.TempDir(), "data"), freeURL(t), freeURL(t))
	defer e.Close()
	defer cli.Close()
	if _, err := cli.Put(t.Context(), "/registry/namespaces/kept", "x"); err != nil {
		t.Fatal(err)
	}
	rc, err := cli.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func restoreFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(stateDir, "restore", "*"))
	return names
}

// A k3s .zip and a copy of state.db on the node are verified and staged
// where the restore finds its snapshot: the plan's Stage uses them with no
// store at all.
func TestStageFileFeedsTheRestoreWithoutAStore(t *testing.T) {
	dir := t.TempDir()
	snapshot := realSnapshotFile(t)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "etcd-snapshot-s1-1795285773", Method: zip.Deflate})
	w.Write(snapshot)
	zw.Close()
	zipped := filepath.Join(dir, "etcd-snapshot-s1-1795285773.zip")
	os.WriteFile(zipped, buf.Bytes(), 0o600)

	stateDB := filepath.Join(dir, "state.db")
	db, err := sql.Open("sqlite", "file:"+stateDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB); INSERT INTO kine (name, value) VALUES ('/registry/namespaces/back', 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	sqliteBytes, _ := os.ReadFile(stateDB)

	for _, tc := range []struct {
		file, name, kind, datastore string
		want                        []byte
	}{
		{zipped, "etcd-snapshot-s1-1795285773", snapfile.KindK3sZip, "etcd", snapshot},
		{stateDB, "state.db", snapfile.KindSQLite, dbsnap.DatastoreSQLite, sqliteBytes},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			stateDir := t.TempDir()
			snap, err := StageFile(context.Background(), tc.file, false, stateDir)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Name != tc.name || snap.Imported.Kind != tc.kind || snap.DatastoreKind() != tc.datastore || snap.Origin != dbsnap.OriginImported {
				t.Errorf("record %+v %+v", snap, snap.Imported)
			}
			p := &Plan{ID: "plan-file", Node: "n1", Flavor: "k3s", Role: RoleReset}
			if tc.datastore == dbsnap.DatastoreSQLite {
				p.Role = RoleSQLite
				p.K3sDataDir = filepath.Join(dir, "k3s")
				os.MkdirAll(filepath.Join(p.K3sDataDir, "server", "db"), 0o700)
			}
			reused, err := Stage(context.Background(), nil, snap, nil, stateDir, p)
			if err != nil || !reused {
				t.Fatalf("stage with no store: reused %v, %v", reused, err)
			}
			got, err := os.ReadFile(p.SnapshotPath)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("the restore would use %s: %d bytes, want the snapshot's %d (%v)", p.SnapshotPath, len(got), len(tc.want), err)
			}
		})
	}
}

// A truncated file, a damaged state.db copy and a member's db without
// --no-hash are refused and nothing is staged.
func TestStageFileRefusesDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	snapshot := realSnapshotFile(t)
	cut := filepath.Join(dir, "cut.db")
	os.WriteFile(cut, snapshot[:len(snapshot)-4096], 0o600)
	member := filepath.Join(dir, "db")
	os.WriteFile(member, snapshot[:len(snapshot)-32], 0o600)
	badSQLite := filepath.Join(dir, "state.db")
	os.WriteFile(badSQLite, append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 8192)...), 0o600)

	for file, says := range map[string]string{cut: "truncated or damaged", member: "give --no-hash", badSQLite: "not a usable snapshot"} {
		stateDir := t.TempDir()
		_, err := StageFile(context.Background(), file, false, stateDir)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: error %v, want it saying %q", filepath.Base(file), err, says)
		}
		if left := restoreFiles(t, stateDir); len(left) != 0 {
			t.Errorf("%s: staged %v", filepath.Base(file), left)
		}
	}
	stateDir := t.TempDir()
	snap, err := StageFile(context.Background(), member, true, stateDir)
	if err != nil || !snap.Imported.NoHash || snap.Size != int64(len(snapshot)) {
		t.Errorf("a member's db with --no-hash: %v", err)
	}
	if err != nil && errors.Is(err, snapfile.ErrNoTrailer) {
		t.Errorf("--no-hash still asks for a trailer")
	}
}
