package etcdsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// lostStateDir is the real file store whose uploads fail while the
// node's state dir goes away with them (its disk failed): the record of
// the failed upload cannot be written.
type lostStateDir struct {
	objstore.Store
	stateDir string
}

func (l lostStateDir) Put(context.Context, string, io.Reader, int64) (int64, error) {
	os.RemoveAll(l.stateDir)
	os.WriteFile(l.stateDir, []byte("not a directory"), 0o600)
	return 0, errors.New("store down")
}

// A pending snapshot whose upload fails again has its record rewritten
// with the new error; when that write fails, UploadPending says so
// instead of dropping the error.
func TestUploadPendingReportsARecordItCouldNotWriteOnAFileStore(t *testing.T) {
	dir := t.TempDir()
	base, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	s := &Snapshotter{Node: "server-1", Layout: Layout{DataDir: dir}, Store: lostStateDir{base, stateDir}, StateDir: stateDir}
	local := filepath.Join(dir, "snap-1")
	data := []byte("an etcd snapshot")
	if err := os.WriteFile(local, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := s.writePending(&dbsnap.Snapshot{Name: "snap-1", Node: "server-1", LocalPath: local, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UploadPending(context.Background())
	if err == nil || !strings.Contains(err.Error(), "store down") || !strings.Contains(err.Error(), "record snapshot snap-1 as not uploaded") {
		t.Errorf("UploadPending = %v, want the upload's error and the record that could not be written", err)
	}
}
