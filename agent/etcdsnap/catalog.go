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
	"sort"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
)

// ListStore returns the good snapshots in the store: those whose metadata
// object exists (written only after the data was verified). It needs no
// agent, so it works while the cluster is down.
func ListStore(ctx context.Context, store objstore.Store) ([]*Snapshot, error) {
	objs, err := store.List(ctx, "etcd/")
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		snap, err := readMeta(ctx, store, o.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	SortNewestFirst(out)
	return out, nil
}

func readMeta(ctx context.Context, store objstore.Store, key string) (*Snapshot, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var snap Snapshot
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&snap); err != nil {
		return nil, fmt.Errorf("read snapshot metadata %s: %w", key, err)
	}
	return &snap, nil
}

func SortNewestFirst(s []*Snapshot) {
	sort.SliceStable(s, func(i, j int) bool {
		if !s[i].Created.Equal(s[j].Created) {
			return s[i].Created.After(s[j].Created)
		}
		return s[i].Name < s[j].Name
	})
}

// Find returns the snapshot called name from list.
func Find(list []*Snapshot, name string) (*Snapshot, bool) {
	for _, s := range list {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// ListLocal returns this node's snapshots not (yet) in the store: taken
// while the store was down, or with no store configured.
func (s *Snapshotter) ListLocal() ([]*Snapshot, error) {
	entries, err := os.ReadDir(s.pendingDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.pendingDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var snap Snapshot
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
	SortNewestFirst(out)
	return out, nil
}

// UploadPending uploads local snapshots the store did not get, oldest
// first, after checking each file still matches its checksum. It returns
// the snapshots it uploaded.
func (s *Snapshotter) UploadPending(ctx context.Context) ([]*Snapshot, error) {
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
	var done []*Snapshot
	var errs []error
	for i := len(pending) - 1; i >= 0; i-- {
		snap := pending[i]
		if err := s.uploadLocal(ctx, snap); err != nil {
			snap.UploadError = err.Error()
			_ = s.writePending(snap)
			errs = append(errs, fmt.Errorf("upload %s: %w", snap.Name, err))
			continue
		}
		done = append(done, snap)
	}
	return done, errors.Join(errs...)
}

func (s *Snapshotter) uploadLocal(ctx context.Context, snap *Snapshot) error {
	f, err := os.Open(snap.LocalPath)
	if err != nil {
		return err
	}
	defer f.Close()
	snap.Encryption = ""
	if s.Recipient != nil {
		snap.Encryption = "age"
	}
	snap.StoreKey = dataKey(snap.Node, snap.Name, snap.Encrypted())
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
		err := fmt.Errorf("%w: local copy %s has sha256 %s, recorded %s", ErrChecksum, snap.LocalPath, got, snap.SHA256)
		up.Abort(err)
		return err
	}
	if snap.StoredSize, snap.StoredSHA256, err = up.Finish(); err != nil {
		return err
	}
	return s.commit(ctx, snap)
}

// DeleteFromStore removes a snapshot from the store: the metadata first,
// so a half-done removal never leaves something listed as good.
func DeleteFromStore(ctx context.Context, store objstore.Store, snap *Snapshot) error {
	if err := store.Delete(ctx, metaKey(snap.Node, snap.Name)); err != nil {
		return err
	}
	if snap.Bootstrap != nil && snap.Bootstrap.StoreKey != "" {
		if err := store.Delete(ctx, snap.Bootstrap.StoreKey); err != nil {
			return err
		}
	}
	if snap.StoreKey != "" {
		return store.Delete(ctx, snap.StoreKey)
	}
	return nil
}

// DeleteLocal removes this node's local copy of a snapshot, if it has one.
func (s *Snapshotter) DeleteLocal(name string) (bool, error) {
	if err := ValidateName(name); err != nil {
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
