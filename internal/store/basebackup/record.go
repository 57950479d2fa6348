package basebackup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// BaseBackup is pg/<source>/basebackups/<id>.json, written once the
// backup's WAL is in the store: a base backup that is listed can be
// restored.
type BaseBackup struct {
	// Version is the store format version (drstore.FormatVersion; records
	// written before it existed have none and are read as 1).
	Version    int       `json:"version,omitempty"`
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Node       string    `json:"node"`
	PGData     string    `json:"pgdata"`
	PGVersion  string    `json:"pgVersion"`
	SnapshotID string    `json:"snapshotID"`
	StartLSN   string    `json:"startLSN"`
	StopLSN    string    `json:"stopLSN"`
	Timeline   uint32    `json:"timeline"`
	StartTime  time.Time `json:"startTime"`
	StopTime   time.Time `json:"stopTime"`
	// StopSegment is the WAL file holding StopLSN: restoring needs WAL
	// up to it at least.
	StopSegment string `json:"stopSegment"`
	// Label and TablespaceMap are what pg_backup_stop returned; they are
	// written into the restored directory.
	Label         string `json:"label"`
	TablespaceMap string `json:"tablespaceMap,omitempty"`
	Bytes         int64  `json:"bytes"`
	// StopSnapshot is txid_current_snapshot() read just after
	// pg_backup_stop ("xmin:xmax:xip,..."): a transaction at or above xmax,
	// or in the list, ended after the backup did, so a restore from it can
	// stop at that transaction. Empty in records of older agents.
	StopSnapshot string `json:"stopSnapshot,omitempty"`
}

// ErrNoBaseBackup means no base backup can serve the restore.
var ErrNoBaseBackup = errors.New("no base backup")

// Key is where a base backup's record lives.
func Key(source, id string) string { return path.Join("pg", source, "basebackups", id+".json") }

// Write stores the record, signed by sign (nil: unsigned); it is what
// makes the base backup listed, so it is written last.
func Write(ctx context.Context, store objstore.Store, b *BaseBackup, sign *signature.Signer) error {
	b.Version = drstore.FormatVersion
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return signature.Put(ctx, store, sign, Key(b.Source, b.ID), data)
}

// Delete removes the record, then its signature.
func Delete(ctx context.Context, store objstore.Store, b *BaseBackup) error {
	if err := store.Delete(ctx, Key(b.Source, b.ID)); err != nil {
		return err
	}
	return signature.Delete(ctx, store, Key(b.Source, b.ID))
}

// maxRecord bounds what a base backup record may take.
const maxRecord = 1 << 20

// Verified reads b's record again and checks it against its signature
// under p: only the node that took the base backup (or kubectl dr) may
// vouch for it. The record returned is decoded from the verified bytes;
// restore from it, not from b.
func Verified(ctx context.Context, store objstore.Store, p signature.Policy, b *BaseBackup) (*BaseBackup, error) {
	key := Key(b.Source, b.ID)
	data, _, err := p.Read(ctx, store, "base backup record", key, maxRecord, signature.Owner{Node: b.Node})
	if err != nil {
		return nil, err
	}
	v, err := decode(key, data)
	if err != nil {
		return nil, err
	}
	if v.Node != b.Node {
		return nil, fmt.Errorf("base backup record %s names node %s, listed as %s's: read it again", key, v.Node, b.Node)
	}
	return v, nil
}

// List returns the source's base backups (every source's when source is
// empty), oldest first. A record that cannot be used (corrupt, foreign,
// newer) is left out and named in skipped; only a failing store is an
// error.
func List(ctx context.Context, store objstore.Store, source string) (out []*BaseBackup, skipped []drstore.Skipped, err error) {
	prefix := path.Join("pg", source, "basebackups") + "/"
	if source == "" {
		prefix = "pg/"
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	for _, o := range objs {
		// pg/<source>/basebackups/<id>.json
		if parts := strings.Split(o.Key, "/"); len(parts) >= 4 && parts[len(parts)-2] == "basebackups" && strings.HasSuffix(o.Key, ".json") {
			keys = append(keys, o.Key)
		}
	}
	out, skipped, err = drstore.ReadEach(keys, func(key string) (*BaseBackup, error) { return read(ctx, store, key) },
		func(err error) bool { return errors.Is(err, objstore.ErrNotFound) })
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StopTime.Before(out[j].StopTime) })
	return out, skipped, nil
}

func read(ctx context.Context, store objstore.Store, key string) (*BaseBackup, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxRecord))
	rc.Close()
	if err != nil {
		return nil, err
	}
	return decode(key, data)
}

func decode(key string, data []byte) (*BaseBackup, error) {
	var b BaseBackup
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, drstore.BadRecord(key, fmt.Errorf("not a base backup record: %w", err))
	}
	if err := drstore.CheckVersion("base backup record "+key, b.Version); err != nil {
		return nil, err
	}
	if b.ID == "" || Key(b.Source, b.ID) != key {
		return nil, drstore.BadRecord(key, fmt.Errorf("it is the record of base backup %q of source %q", b.ID, b.Source))
	}
	return &b, nil
}
