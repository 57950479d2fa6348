package files

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
)

// Tags restic snapshots carry.
const (
	TagNode      = "node="
	TagSet       = "set="
	TagPVC       = "pvc="
	TagScheduled = "scheduled"
)

// BackupRequest is one backup of the node's files.
type BackupRequest struct {
	// Set is the backup set id; empty for a backup outside a set.
	Set string
	// Paths narrow the backup to these (under the configured roots);
	// empty backs up every root.
	Paths     []string
	Tags      []string
	Scheduled bool
}

// BackupResult is the snapshot made.
type BackupResult struct {
	Summary *restic.BackupSummary
	Paths   []string
	// PVCs maps each PVC backed up ("namespace/name") to its directory.
	PVCs map[string]string
}

// Backup snapshots the node's paths with restic; progress gets restic's
// status lines.
func (e *Engine) Backup(ctx context.Context, req BackupRequest, progress func(restic.BackupStatus)) (*BackupResult, error) {
	if err := e.lock(ctx); err != nil {
		return nil, err
	}
	defer e.unlock()
	roots, err := e.Roots()
	if err != nil {
		return nil, err
	}
	paths := roots
	if len(req.Paths) > 0 {
		if paths, err = cleanPaths(req.Paths, roots); err != nil {
			return nil, err
		}
	}
	if err := e.ensure(ctx, true); err != nil {
		return nil, err
	}
	tags := []string{TagNode + e.Node}
	if req.Set != "" {
		tags = append(tags, TagSet+req.Set)
	}
	if req.Scheduled {
		tags = append(tags, TagScheduled)
	}
	pvcs := map[string]string{}
	for dir, claim := range e.PVCs(ctx, roots) {
		if withinAny(paths, dir) {
			pvcs[claim] = dir
		}
	}
	claims := make([]string, 0, len(pvcs))
	for c := range pvcs {
		claims = append(claims, c)
	}
	sort.Strings(claims)
	for _, c := range claims {
		tags = append(tags, TagPVC+c)
	}
	tags = append(tags, req.Tags...)
	sum, err := e.backup(ctx, restic.BackupOptions{Paths: paths, Excludes: e.Paths.Exclude, Tags: tags, Host: e.Node}, progress)
	if err != nil {
		return nil, err
	}
	return &BackupResult{Summary: sum, Paths: paths, PVCs: pvcs}, nil
}

// Forget removes the snapshots of one backup set (every node's: the
// repository is shared) and prunes their data. It returns their ids.
func (e *Engine) Forget(ctx context.Context, set string, prune bool) ([]string, error) {
	return e.forget(ctx, TagSet+set, func(restic.Snapshot) bool { return true }, prune, false)
}

// ForgetWhere forgets the snapshots carrying tag (every node's) that drop
// picks, prunes their data, and returns their ids. dryRun only picks.
func (e *Engine) ForgetWhere(ctx context.Context, tag string, drop func(restic.Snapshot) bool, dryRun bool) ([]string, error) {
	return e.forget(ctx, tag, drop, true, dryRun)
}

func (e *Engine) forget(ctx context.Context, tag string, drop func(restic.Snapshot) bool, prune, dryRun bool) ([]string, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	snaps, err := e.Repo.Snapshots(ctx, tag)
	if err != nil {
		return nil, e.explain(err)
	}
	ids := []string{}
	for _, s := range snaps {
		if drop(s) {
			ids = append(ids, s.ID)
		}
	}
	if dryRun || len(ids) == 0 {
		return ids, nil
	}
	if err := e.runLocked(ctx, func(r *restic.Repo) error { return r.ForgetIDs(ctx, ids, prune) }); err != nil {
		return nil, err
	}
	return ids, nil
}

// ApplyRetention forgets this node's scheduled snapshots beyond the policy
// and prunes. restic's exclusive lock keeps it to one node at a time.
func (e *Engine) ApplyRetention(ctx context.Context, p restic.Policy) ([]string, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	var removed []string
	err := e.runLocked(ctx, func(r *restic.Repo) error {
		var err error
		removed, err = r.ForgetPolicy(ctx, e.Node, TagScheduled, p, true)
		return err
	})
	return removed, err
}

// Check runs restic check, reading back subset of the data ("10%") when
// given.
func (e *Engine) Check(ctx context.Context, subset string) (*restic.CheckResult, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	var res *restic.CheckResult
	err := e.runLocked(ctx, func(r *restic.Repo) error {
		var err error
		res, err = r.Check(ctx, subset)
		return err
	})
	return res, err
}

// BackupDir snapshots one directory outside the configured roots (a
// database's data directory for a base backup), with the node's slot and
// the repository's locks like any backup.
func (e *Engine) BackupDir(ctx context.Context, dir string, excludes, tags []string, progress func(restic.BackupStatus)) (*restic.BackupSummary, error) {
	if err := e.lock(ctx); err != nil {
		return nil, err
	}
	defer e.unlock()
	if err := e.ensure(ctx, true); err != nil {
		return nil, err
	}
	return e.backup(ctx, restic.BackupOptions{Paths: []string{dir}, Excludes: excludes, Tags: append([]string{TagNode + e.Node}, tags...), Host: e.Node}, progress)
}

// backup runs restic backup under the repository's lock handling; the
// caller holds the node's slot and has ensured the repository.
func (e *Engine) backup(ctx context.Context, o restic.BackupOptions, progress func(restic.BackupStatus)) (*restic.BackupSummary, error) {
	var sum *restic.BackupSummary
	err := e.runLocked(ctx, func(r *restic.Repo) error {
		var err error
		sum, err = r.Backup(ctx, o, progress)
		return err
	})
	return sum, err
}

// RestoreDir restores the directory dir of a snapshot into target, which
// receives dir's contents. A target among the node's own paths (a
// database's data directory on a volume whose files are backed up too)
// takes the turn of the restores into them; elsewhere it restores beside
// them. A drill restoring into scratch in place of the real target names
// it as turnOf, to wait as the real restore would ("": target).
func (e *Engine) RestoreDir(ctx context.Context, snapshot, dir, target, turnOf string, progress func(restic.RestoreStatus)) error {
	if turnOf == "" {
		turnOf = target
	}
	if roots, err := e.Roots(); err == nil && withinAny(roots, turnOf) {
		if err := e.lockLive(ctx); err != nil {
			return err
		}
		defer e.unlockLive()
	} else {
		if err := e.share(ctx); err != nil {
			return err
		}
		defer e.unshare()
	}
	if err := e.ensure(ctx, false); err != nil {
		return err
	}
	_, err := e.Repo.Restore(ctx, restic.RestoreOptions{Snapshot: snapshot + ":" + dir, Target: target}, nil, progress)
	return e.explain(err)
}

// FindSnapshot is the snapshot a drill restores: id (full or short), else
// the newest of node (this node when empty) in backup set set, else the
// newest file backup of node (base backups, tagged pg=, are PostgreSQL's).
func (e *Engine) FindSnapshot(ctx context.Context, id, set, node string) (*restic.Snapshot, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	if node == "" {
		node = e.Node
	}
	var tags []string
	if id == "" {
		tags = append(tags, TagNode+node)
		if set != "" {
			tags = append(tags, TagSet+set)
		}
	}
	snaps, err := e.Repo.Snapshots(ctx, tags...)
	if err != nil {
		return nil, e.explain(err)
	}
	var snap *restic.Snapshot
	for i := range snaps {
		s := &snaps[i]
		switch {
		case id != "" && s.ID != id && s.ShortID != id:
			continue
		case id == "" && set == "" && slices.ContainsFunc(s.Tags, func(t string) bool { return strings.HasPrefix(t, "pg=") }):
			continue
		}
		if snap == nil || s.Time.After(snap.Time) {
			snap = s
		}
	}
	switch {
	case snap != nil:
		return snap, nil
	case id != "":
		return nil, fmt.Errorf("%w %s in the repository", ErrNoSnapshot, id)
	case set != "":
		return nil, fmt.Errorf("%w of node %s in backup set %s", ErrNoSnapshot, node, set)
	}
	return nil, fmt.Errorf("%w of node %s: none is tagged %s%s", ErrNoSnapshot, node, TagNode, node)
}

// RestoreSnapshot restores a whole snapshot below target (its absolute
// paths recreated there), with verify having restic read every file back
// against the snapshot.
func (e *Engine) RestoreSnapshot(ctx context.Context, id, target string, verify bool, progress func(restic.RestoreStatus)) (*restic.RestoreSummary, error) {
	// The restore rehearses one into the node's own paths, and takes
	// turns as that would; the read-back (verify) goes beside.
	if verify {
		if err := e.share(ctx); err != nil {
			return nil, err
		}
		defer e.unshare()
	} else {
		if err := e.lockLive(ctx); err != nil {
			return nil, err
		}
		defer e.unlockLive()
	}
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	var sum *restic.RestoreSummary
	err := e.runLocked(ctx, func(r *restic.Repo) error {
		var err error
		sum, err = r.Restore(ctx, restic.RestoreOptions{Snapshot: id, Target: target, Verify: verify}, nil, progress)
		return err
	})
	return sum, err
}

// NewestPerNode is each node's newest file snapshot in the repository
// (by its node= tag; a PostgreSQL base backup's snapshots, tagged pg=,
// left out).
func (e *Engine) NewestPerNode(ctx context.Context) (map[string]restic.Snapshot, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	snaps, err := e.Repo.Snapshots(ctx)
	if err != nil {
		return nil, e.explain(err)
	}
	out := map[string]restic.Snapshot{}
	for _, s := range snaps {
		if slices.ContainsFunc(s.Tags, func(t string) bool { return strings.HasPrefix(t, "pg=") }) {
			continue
		}
		for _, t := range s.Tags {
			node, ok := strings.CutPrefix(t, TagNode)
			if !ok || node == "" {
				continue
			}
			if old, seen := out[node]; !seen || s.Time.After(old.Time) {
				out[node] = s
			}
		}
	}
	return out, nil
}
