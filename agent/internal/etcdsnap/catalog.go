package etcdsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// ListLocal returns this node's snapshots not (yet) in the store: taken
// while the store was down, or with no store configured.
func (s *Snapshotter) ListLocal() ([]*dbsnap.Snapshot, error) {
	entries, err := os.ReadDir(s.pendingDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*dbsnap.Snapshot
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.pendingDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var snap dbsnap.Snapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		if _, err := os.Stat(snap.LocalPath); err != nil {
			// The local file is gone (removed by hand or by k3s): forget it.
			os.Remove(filepath.Join(s.pendingDir(), e.Name()))
			continue
		}
		out = append(out, &snap)
	}
	dbsnap.SortNewestFirst(out)
	return out, nil
}

// UploadPending uploads local snapshots the store did not get, oldest
// first, after checking each file still matches its checksum. It returns
// the snapshots it uploaded.
func (s *Snapshotter) UploadPending(ctx context.Context) ([]*dbsnap.Snapshot, error) {
	if s.Store == nil {
		return nil, nil
	}
	if !s.mu.TryLock() {
		return nil, ErrBusy
	}
	defer s.mu.Unlock()
	pending, err := s.ListLocal()
	if err != nil {
		return nil, err
	}
	var done []*dbsnap.Snapshot
	var errs []error
	for i := len(pending) - 1; i >= 0; i-- {
		snap := pending[i]
		if err := s.uploadLocal(ctx, snap); err != nil {
			snap.UploadError = err.Error()
			errs = append(errs, fmt.Errorf("upload %s: %w", snap.Name, err))
			// The snapshot stays local either way; a record that is not
			// rewritten shows the previous error.
			if perr := s.writePending(snap); perr != nil {
				errs = append(errs, perr)
			}
			continue
		}
		done = append(done, snap)
	}
	return done, errors.Join(errs...)
}

func (s *Snapshotter) uploadLocal(ctx context.Context, snap *dbsnap.Snapshot) error {
	f, err := os.Open(snap.LocalPath)
	if err != nil {
		return err
	}
	defer f.Close()
	snap.Encryption = ""
	if s.Recipient != nil {
		snap.Encryption = "age"
	}
	snap.StoreKey = dbsnap.DataKey(snap.Node, snap.Name, snap.Encrypted())
	up, err := startUpload(ctx, s.Store, snap.StoreKey, s.Recipient)
	if err != nil {
		return err
	}
	raw := sha256.New()
	if _, err := io.Copy(io.MultiWriter(raw, up), f); err != nil {
		up.Abort(err)
		return err
	}
	if got := hex.EncodeToString(raw.Sum(nil)); got != snap.SHA256 {
		err := fmt.Errorf("%w: local copy %s has sha256 %s, recorded %s", dbsnap.ErrChecksum, snap.LocalPath, got, snap.SHA256)
		up.Abort(err)
		return err
	}
	if snap.StoredSize, snap.StoredSHA256, err = up.Finish(); err != nil {
		return err
	}
	return s.commit(ctx, snap)
}

// DeleteLocal removes this node's local copy of a snapshot, if it has one.
func (s *Snapshotter) DeleteLocal(name string) (bool, error) {
	if err := dbsnap.ValidateName(name); err != nil {
		return false, err
	}
	p := filepath.Join(s.Layout.SnapshotsDir(), name)
	os.Remove(filepath.Join(s.pendingDir(), name+".json"))
	err := os.Remove(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
