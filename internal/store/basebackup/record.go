package basebackup

import (
	"bytes"
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
}

// ErrNoBaseBackup means no base backup can serve the restore.
var ErrNoBaseBackup = errors.New("no base backup")

// Key is where a base backup's record lives.
func Key(source, id string) string { return path.Join("pg", source, "basebackups", id+".json") }

// Write stores the record; it is what makes the base backup listed, so it
// is written last.
func Write(ctx context.Context, store objstore.Store, b *BaseBackup) error {
	b.Version = drstore.FormatVersion
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, Key(b.Source, b.ID), bytes.NewReader(data), int64(len(data)))
	return err
}

// List returns the source's base backups (every source's when source is
// empty), oldest first.
func List(ctx context.Context, store objstore.Store, source string) ([]*BaseBackup, error) {
	prefix := path.Join("pg", source, "basebackups") + "/"
	if source == "" {
		prefix = "pg/"
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []*BaseBackup
	for _, o := range objs {
		// pg/<source>/basebackups/<id>.json
		if parts := strings.Split(o.Key, "/"); len(parts) < 4 || parts[len(parts)-2] != "basebackups" || !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		rc, err := store.Get(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		var b BaseBackup
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, fmt.Errorf("base backup record %s: %w", o.Key, err)
		}
		if err := drstore.CheckVersion("base backup record "+o.Key, b.Version); err != nil {
			return nil, err
		}
		out = append(out, &b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StopTime.Before(out[j].StopTime) })
	return out, nil
}

// Pick chooses the newest base backup that finished before target (zero:
// the newest of all).
func Pick(list []*BaseBackup, target time.Time) (*BaseBackup, error) {
	var best *BaseBackup
	for _, b := range list {
		if target.IsZero() || !b.StopTime.After(target) {
			best = b
		}
	}
	if best == nil {
		if len(list) == 0 {
			return nil, fmt.Errorf("%w: take one with kubectl dr pg basebackup", ErrNoBaseBackup)
		}
		return nil, fmt.Errorf("%w finished before %s (the oldest finished %s)", ErrNoBaseBackup, target.UTC().Format(time.RFC3339), list[0].StopTime.UTC().Format(time.RFC3339))
	}
	return best, nil
}
