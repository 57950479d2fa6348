package etcdsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// refusing answers every delete as the store answers put/get-only
// credentials, or an object under lock.
type refusing struct {
	objstore.Store
	err error
}

func (r refusing) Delete(_ context.Context, key string) error {
	return fmt.Errorf("delete %s: %w", key, r.err)
}

// Retention whose deletes the store refuses removes nothing from it, fails
// nothing, and says per snapshot why it was left; with a store that
// deletes, the same prune removes them.
func TestPruneLeavesWhatTheStoreRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("snapshot bytes")
	path := filepath.Join(dir, "snap.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		snap := &dbsnap.Snapshot{Name: fmt.Sprintf("etcd-snapshot-server-1-%d", t0.Unix()+int64(i)*3600), Node: "server-1",
			Created: t0.Add(time.Duration(i) * time.Hour), Scheduled: true, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		if err := dbsnap.Put(ctx, store, snap, path, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := &Snapshotter{Node: "server-1", Layout: Layout{DataDir: filepath.Join(dir, "k3s")}}
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		err  error
		want string
	}{
		{objstore.ErrDenied, "may not delete; kubectl dr etcd snapshot prune removes it"},
		{&objstore.LockedError{Key: "k", Until: until}, "under object lock until 2026-12-01T00:00:00Z"},
	} {
		res, err := s.PruneIn(ctx, refusing{store, tt.err}, "etcd-snapshot", agentconfig.Retention{KeepLast: 1}, false)
		if err != nil {
			t.Fatalf("prune, deletes refused (%v): %v", tt.err, err)
		}
		if len(res.Removed) != 0 || len(res.Deferred) != 2 || !strings.Contains(res.Deferred[0], tt.want) || len(res.Kept) != 3 {
			t.Errorf("deletes refused (%v): removed %v, kept %v, deferred %v; want nothing removed, 2 deferred saying %q", tt.err, res.Removed, res.Kept, res.Deferred, tt.want)
		}
		if list, _, _ := dbsnap.ListStore(ctx, store); len(list) != 3 {
			t.Errorf("snapshots in the store after a refused prune: %d; want 3", len(list))
		}
	}
	res, err := s.PruneIn(ctx, store, "etcd-snapshot", agentconfig.Retention{KeepLast: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	list, _, _ := dbsnap.ListStore(ctx, store)
	if len(res.Removed) != 2 || len(res.Deferred) != 0 || len(list) != 1 || !slices.Contains(res.Kept, list[0].Name) {
		t.Errorf("prune with deletes: removed %v, deferred %v, %d left", res.Removed, res.Deferred, len(list))
	}
}
