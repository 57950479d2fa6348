package dbsnap

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
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
	if err := drstore.CheckVersion("snapshot record "+key, snap.Version); err != nil {
		return nil, err
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

// DeleteFromStore removes a snapshot from the store: the metadata first,
// so a half-done removal never leaves something listed as good.
func DeleteFromStore(ctx context.Context, store objstore.Store, snap *Snapshot) error {
	if err := store.Delete(ctx, MetaKey(snap.Node, snap.Name)); err != nil {
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
