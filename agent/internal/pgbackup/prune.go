package pgbackup

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/retention"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// PruneResult is what retention kept and removed of a source's backups.
type PruneResult struct {
	Kept, Removed []*basebackup.BaseBackup
	// FirstWAL is the oldest kept base backup's first WAL file: the WAL
	// before it (and its .backup files) is removed, history files never.
	FirstWAL   string
	WALFiles   int
	WALBytes   int64
	Snapshots  []string // restic snapshots forgotten
	DryRun     bool
	Retention  agentconfig.Retention
	NoneToKeep bool // no base backup at all: nothing was removed
	// Deferred says why the prune stopped early: the store refused a
	// delete (put/get-only credentials, Object Lock). What was due and not
	// removed is whole: a refused record stops the prune before its
	// snapshot and WAL.
	Deferred string
}

// Prune applies r to the source's base backups, oldest first: a removed
// base backup's record goes first (so it is never listed without its
// data), then its restic snapshot, then the WAL that only removed backups
// could use. The caller holds the source's lock, so no base backup is
// being taken: a restic snapshot of the source that no kept record names
// is one a removed (or failed) base backup left. dryRun removes nothing.
func Prune(ctx context.Context, store objstore.Store, eng *files.Engine, source string, r agentconfig.Retention, dryRun bool) (*PruneResult, error) {
	res := &PruneResult{DryRun: dryRun, Retention: r}
	// An unusable record is left alone: only what is listed is pruned.
	list, _, err := basebackup.List(ctx, store, source)
	if err != nil {
		return nil, fmt.Errorf("list base backups of %s: %w", source, err)
	}
	if len(list) == 0 {
		res.NoneToKeep = true
		return res, nil
	}
	byID := map[string]*basebackup.BaseBackup{}
	items := make([]retention.Dated, 0, len(list))
	for _, b := range list {
		byID[b.ID] = b
		items = append(items, retention.Dated{Name: b.ID, Time: b.StopTime})
	}
	keep, remove := retention.Apply(items, r)
	for _, d := range keep {
		res.Kept = append(res.Kept, byID[d.Name])
	}
	for _, d := range remove {
		res.Removed = append(res.Removed, byID[d.Name])
	}
	oldest := res.Kept[0]
	for _, b := range res.Kept {
		if b.StartTime.Before(oldest.StartTime) {
			oldest = b
		}
	}
	if res.FirstWAL, err = startSegment(oldest); err != nil {
		return nil, err
	}

	if !dryRun {
		for i, b := range res.Removed {
			err := basebackup.Delete(ctx, store, b)
			if objstore.Refused(err) {
				// Those not yet removed are kept, their snapshots and
				// WAL with them.
				res.Kept = append(res.Kept, res.Removed[i:]...)
				res.Removed = res.Removed[:i]
				res.Deferred = fmt.Sprintf("remove base backup %s: %v", b.ID, err)
				return res, nil
			}
			if err != nil {
				return nil, fmt.Errorf("remove base backup %s: %w", b.ID, err)
			}
		}
	}
	kept := map[string]bool{}
	newest := res.Kept[0].StartTime
	for _, b := range res.Kept {
		kept[b.SnapshotID] = true
		if b.StartTime.After(newest) {
			newest = b.StartTime
		}
	}
	// A snapshot started after the newest kept base backup may be one
	// still being taken (by another node's agent): left alone.
	drop := func(s restic.Snapshot) bool { return !kept[s.ID] && s.Time.Before(newest) }
	if eng != nil {
		res.Snapshots, err = eng.ForgetWhere(ctx, "pg="+source, drop, dryRun)
		if err != nil {
			return nil, fmt.Errorf("forget the removed base backups' snapshots: %w", err)
		}
	}

	objs, err := store.List(ctx, "wal/"+source+"/")
	if err != nil {
		return nil, fmt.Errorf("list WAL of %s: %w", source, err)
	}
	for _, o := range objs {
		name, ok := strings.CutSuffix(path.Base(o.Key), walobj.ObjectSuffix)
		if !ok || !walBefore(name, res.FirstWAL) {
			continue
		}
		if !dryRun {
			err := store.Delete(ctx, o.Key)
			if objstore.Refused(err) {
				res.Deferred = fmt.Sprintf("remove WAL %s: %v", o.Key, err)
				return res, nil
			}
			if err != nil {
				return nil, fmt.Errorf("remove WAL %s: %w", o.Key, err)
			}
		}
		res.WALFiles++
		res.WALBytes += o.Size
	}
	return res, nil
}

var labelStartRE = regexp.MustCompile(`START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)`)

// startSegment is the WAL file a base backup starts in, as its
// backup_label says (the segment size is the database's, not assumed).
func startSegment(b *basebackup.BaseBackup) (string, error) {
	m := labelStartRE.FindStringSubmatch(b.Label)
	if m == nil {
		return "", fmt.Errorf("base backup %s: its backup label names no start WAL file; nothing was removed", b.ID)
	}
	return m[1], nil
}

// walBefore says whether the WAL file name (a segment, a .backup or a
// .partial file) lies wholly before first: an earlier position, on first's
// timeline or an older one. History files are always kept: recovery reads
// them to follow timelines.
func walBefore(name, first string) bool {
	k := walobj.Classify(name)
	if !slices.Contains([]walobj.Kind{walobj.Segment, walobj.Backup, walobj.Partial}, k) {
		return false
	}
	return name[:8] <= first[:8] && name[8:24] < first[8:24]
}
