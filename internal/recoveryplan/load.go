package recoveryplan

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// FileLister lists the restic snapshots a recovery may restore. The
// plugin cannot run restic: SetFiles reads them from the backup sets in
// the store; an agent-backed lister can add snapshots taken outside sets.
type FileLister interface {
	FileSnapshots(ctx context.Context) ([]FileSnapshot, error)
}

// SetFiles lists the file snapshots the backup sets name: each set's
// parts that succeeded, dated by the set (started, finished).
type SetFiles []*backupset.Set

// FileSnapshots implements FileLister.
func (s SetFiles) FileSnapshots(context.Context) ([]FileSnapshot, error) {
	var out []FileSnapshot
	for _, set := range s {
		for _, fp := range set.Files {
			if fp.Failed() || fp.SnapshotID == "" {
				continue
			}
			out = append(out, FileSnapshot{Node: fp.Node, ID: fp.SnapshotID, Time: set.Started, Done: set.Finished, BackupSet: set.ID, Paths: fp.Paths})
		}
	}
	return out, nil
}

// Load reads what Pick needs from the cluster's part of the store, and
// the file snapshots from files (nil: those of the backup sets). Records
// that cannot be used are left out and returned in skipped: backup sets
// records refuses (unsigned, or their signature does not hold) among them.
func Load(ctx context.Context, store objstore.Store, files FileLister, now time.Time, records signature.Policy) (Inputs, []drstore.Skipped, error) {
	in := Inputs{Now: now}
	var skipped []drstore.Skipped
	snaps, sk, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return in, nil, fmt.Errorf("list datastore snapshots: %w", err)
	}
	in.Snapshots, skipped = snaps, append(skipped, sk...)
	sets, sk, err := backupset.ListVerified(ctx, store, records)
	if err != nil {
		return in, nil, err
	}
	in.Sets, skipped = sets, append(skipped, sk...)
	if files == nil {
		files = SetFiles(sets)
	}
	if in.Files, err = files.FileSnapshots(ctx); err != nil {
		return in, nil, fmt.Errorf("list file snapshots: %w", err)
	}
	bases, sk, err := basebackup.List(ctx, store, "")
	if err != nil {
		return in, nil, fmt.Errorf("list base backups: %w", err)
	}
	skipped = append(skipped, sk...)
	if in.WAL, err = loadWAL(ctx, store, bases); err != nil {
		return in, nil, err
	}
	if in.Buckets, err = loadBuckets(ctx, store); err != nil {
		return in, nil, err
	}
	return in, skipped, nil
}

// loadWAL groups the base backups and the archived segments by source
// (wal/<source>/<timeline>/<file>.zst).
func loadWAL(ctx context.Context, store objstore.Store, bases []*basebackup.BaseBackup) ([]WALSource, error) {
	by := map[string]*WALSource{}
	get := func(name string) *WALSource {
		if by[name] == nil {
			by[name] = &WALSource{Name: name}
		}
		return by[name]
	}
	for _, b := range bases {
		s := get(b.Source)
		s.BaseBackups = append(s.BaseBackups, b)
	}
	objs, err := store.List(ctx, "wal/")
	if err != nil {
		return nil, fmt.Errorf("list archived WAL: %w", err)
	}
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		if len(parts) != 4 {
			continue
		}
		name, ok := strings.CutSuffix(path.Base(o.Key), walobj.ObjectSuffix)
		if !ok || walobj.Classify(name) != walobj.Segment {
			continue
		}
		s := get(parts[1])
		s.Segments = append(s.Segments, Segment{Name: name, Stored: o.Modified})
	}
	out := make([]WALSource, 0, len(by))
	for _, s := range by {
		sys, err := walobj.ReadSystem(ctx, store, s.Name)
		switch {
		case err == nil:
			s.SegmentSize = sys.SegmentSize
		case !errors.Is(err, objstore.ErrNotFound):
			return nil, fmt.Errorf("WAL source %s: %w", s.Name, err)
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// loadBuckets reads each bucket source's version index for its finished
// passes (buckets/<source>/index/...).
func loadBuckets(ctx context.Context, store objstore.Store) ([]BucketSource, error) {
	objs, err := store.List(ctx, "buckets/")
	if err != nil {
		return nil, fmt.Errorf("list bucket sources: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		if len(parts) > 2 && parts[2] == "index" && !seen[parts[1]] && bucketobj.ValidSource(parts[1]) == nil {
			seen[parts[1]] = true
			names = append(names, parts[1])
		}
	}
	sort.Strings(names)
	var out []BucketSource
	for _, name := range names {
		idx, err := bucketobj.Load(ctx, store, name)
		if err != nil {
			return nil, err
		}
		src := BucketSource{Name: name}
		for _, s := range idx.Segments {
			if s.Final && !s.Aside {
				src.Passes = append(src.Passes, s.Pass)
			}
		}
		out = append(out, src)
	}
	return out, nil
}
