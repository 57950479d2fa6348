package restoreplan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/snapfile"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// FileNode is the node a snapshot restored from a local file is recorded under.
const FileNode = "file"

// StageFile verifies a snapshot file on this node that is not in the
// store (dr-agent etcd restore --file): an etcdctl snapshot, a k3s .zip, a
// member's db (noHash), or a copy of k3s's state.db. The verified file, in
// etcdctl's format (or the SQLite database), is put where a restore finds
// its fetched snapshot, so the plan runs as for one from the store with no
// store needed. The returned record describes it. Nothing is staged when
// the file does not verify.
func StageFile(ctx context.Context, path string, noHash bool, stateDir string) (*dbsnap.Snapshot, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("restore from %s: not a regular file", path)
	}
	kind, err := snapfile.Kind(path)
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", path, err)
	}
	dir := filepath.Join(stateDir, "restore")
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	snap := &dbsnap.Snapshot{
		Name: fileSnapshotName(path, st.ModTime()), Node: FileNode, Created: st.ModTime().UTC(),
		Origin: dbsnap.OriginImported,
		Imported: &dbsnap.Imported{
			OriginalName: filepath.Base(path), Kind: kind, Size: st.Size(), ImportedAt: time.Now().UTC(),
		},
	}
	verified, want := path, ""
	if kind == snapfile.KindSQLite {
		if err := etcdsnap.CheckSQLite(ctx, path); err != nil {
			return nil, fmt.Errorf("restore from %s: %w: %w", path, snapfile.ErrCorrupt, err)
		}
		snap.Datastore = dbsnap.DatastoreSQLite
	} else {
		f, err := snapfile.Verify(path, snapfile.Options{NoHash: noHash, TempDir: dir})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		verified, want, snap.Revision = f.Path, f.SHA256, f.Revision
		snap.Imported.Kind, snap.Imported.EntryName, snap.Imported.NoHash = f.Kind, f.EntryName, f.Kind == snapfile.KindBoltDB
	}
	in, err := os.Open(verified)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	input := sha256.New()
	n, sum, err := durable.Copy(cachePath(stateDir, snap), io.TeeReader(in, input), 0o600)
	if err != nil {
		return nil, fmt.Errorf("copy %s for the restore: %w", path, err)
	}
	snap.Size, snap.SHA256 = n, hex.EncodeToString(sum)
	snap.Imported.SHA256 = hex.EncodeToString(input.Sum(nil))
	if want != "" && snap.SHA256 != want {
		os.Remove(cachePath(stateDir, snap))
		return nil, fmt.Errorf("restore from %s: %w: it changed while it was copied (sha256 %s, verified %s)", path, dbsnap.ErrChecksum, snap.SHA256, want)
	}
	if kind == snapfile.KindSQLite {
		// What was checked is what was copied: the copy is checked again,
		// since the file could have changed in between.
		if err := etcdsnap.CheckSQLite(ctx, cachePath(stateDir, snap)); err != nil {
			os.Remove(cachePath(stateDir, snap))
			return nil, fmt.Errorf("restore from %s: %w: %w", path, snapfile.ErrCorrupt, err)
		}
		snap.Imported.SHA256 = snap.SHA256
	}
	return snap, nil
}

// fileSnapshotName names a file's snapshot by the file (k3s's names are
// kept), or by its time when the file's name cannot be a snapshot name.
func fileSnapshotName(path string, mod time.Time) string {
	name := strings.TrimSuffix(filepath.Base(path), ".zip")
	if dbsnap.ValidateName(name) == nil {
		return name
	}
	return "file-" + strconv.FormatInt(mod.Unix(), 10)
}
