package dbsnap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// ListStore returns the good snapshots in the store: those whose metadata
// object exists (written only after the data was verified), newest first.
// A metadata object that cannot be used (corrupt, foreign, newer) is left
// out and named in skipped; one bad object never hides the good ones. It
// needs no agent, so it works while the cluster is down.
func ListStore(ctx context.Context, store objstore.Store) (list []*Snapshot, skipped []drstore.Skipped, err error) {
	objs, err := store.List(ctx, "etcd/")
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".json") {
			keys = append(keys, o.Key)
		}
	}
	list, skipped, err = drstore.ReadEach(keys, func(key string) (*Snapshot, error) { return readMeta(ctx, store, key) },
		func(err error) bool { return errors.Is(err, objstore.ErrNotFound) })
	if err != nil {
		return nil, nil, err
	}
	SortNewestFirst(list)
	return list, skipped, nil
}

func readMeta(ctx context.Context, store objstore.Store, key string) (*Snapshot, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRecord))
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return decodeMeta(key, data)
}

// maxRecord bounds what a snapshot record may take.
const maxRecord = 1 << 20

func decodeMeta(key string, data []byte) (*Snapshot, error) {
	var snap Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, drstore.BadRecord(key, fmt.Errorf("not snapshot metadata: %w", err))
	}
	if err := drstore.CheckVersion("snapshot record "+key, snap.Version); err != nil {
		return nil, err
	}
	// A record is only what its key says: etcd/<node>/<name>.json.
	if ValidateName(snap.Name) != nil || snap.Node == "" || MetaKey(snap.Node, snap.Name) != key {
		return nil, drstore.BadRecord(key, fmt.Errorf("it names snapshot %q of node %q, which does not live there", snap.Name, snap.Node))
	}
	return &snap, nil
}

// Verified reads snap's record again and checks it against its signature
// under p: only the node that took a snapshot (or kubectl dr, which
// imports) may vouch for it. The snapshot returned is decoded from the
// verified bytes; use it, not snap, from here on.
func Verified(ctx context.Context, store objstore.Store, p signature.Policy, snap *Snapshot) (*Snapshot, signature.Who, error) {
	key := MetaKey(snap.Node, snap.Name)
	data, who, err := p.Read(ctx, store, "snapshot record", key, maxRecord, signature.Owner{Node: snap.Node})
	if err != nil {
		return nil, who, err
	}
	v, err := decodeMeta(key, data)
	return v, who, err
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
	if err := signature.Delete(ctx, store, MetaKey(snap.Node, snap.Name)); err != nil {
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
