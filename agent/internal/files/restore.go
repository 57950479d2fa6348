package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
)

// Target says what to restore.
type Target struct {
	// SnapshotID, or the snapshot of Set made on SourceNode.
	SnapshotID string
	Set        string
	SourceNode string
	// Paths or PVC ("namespace/name") narrow the restore; empty restores
	// the whole snapshot.
	Paths []string
	PVC   string
	// Dir receives the files below their original absolute paths; empty
	// restores in place.
	Dir string
	// Into receives the contents of the one directory restored (PVC's,
	// or a single path) instead of that directory: a claim's files into
	// the volume of the claim restored in its place. Excludes Dir.
	Into string
}

// Change is one file a restore creates or replaces.
type Change struct {
	Path string `json:"path"`
	Kind string `json:"kind"` // create, change
	Size int64  `json:"size"`
	// Now is the path on the node at the preview, Backup the snapshot's
	// version: both go into the preview's digest.
	Now    State  `json:"now"`
	Backup Backed `json:"backup"`
}

// Preview is what a restore would do, file by file.
type Preview struct {
	SnapshotID string
	Target     string
	Includes   []string
	Create     Count
	Change     Count
	Unchanged  Count
	// Extra are files present locally that the snapshot does not hold: a
	// restore leaves them alone.
	Extra Count
	// Changes lists creations and replacements, sorted; at most MaxChanges.
	Changes   []Change
	Truncated bool
	// Digest is the sha256 (hex) of what the preview shows and the restore
	// would act on (see digest); a restore given it refuses to run when
	// the node no longer gives the same.
	Digest string
}

// Count is files and bytes.
type Count struct{ Files, Bytes int64 }

func (c *Count) add(size int64) { c.Files++; c.Bytes += size }

// MaxChanges caps the per-file list a preview returns.
const MaxChanges = 10000

// plan is a resolved target.
type plan struct {
	snap     restic.Snapshot
	target   string   // "/" or the target dir
	includes []string // snapshot paths
	// from is the snapshot directory whose contents land in target
	// (Target.Into); empty when paths keep their place below target.
	from string
}

func (e *Engine) resolve(ctx context.Context, t Target) (*plan, error) {
	if err := e.ensure(ctx, false); err != nil {
		return nil, err
	}
	var tags []string
	switch {
	case t.SnapshotID != "":
	case t.Set != "":
		node := t.SourceNode
		if node == "" {
			node = e.Node
		}
		tags = []string{TagSet + t.Set, TagNode + node}
	default:
		return nil, errors.New("restore: name a backup set or a snapshot id")
	}
	snaps, err := e.Repo.Snapshots(ctx, tags...)
	if err != nil {
		return nil, e.explain(err)
	}
	var snap *restic.Snapshot
	for i := range snaps {
		s := &snaps[i]
		if t.SnapshotID != "" && s.ID != t.SnapshotID && s.ShortID != t.SnapshotID {
			continue
		}
		if snap == nil || s.Time.After(snap.Time) {
			snap = s
		}
	}
	if snap == nil {
		if t.SnapshotID != "" {
			return nil, fmt.Errorf("%w %s in the repository", ErrNoSnapshot, t.SnapshotID)
		}
		return nil, fmt.Errorf("%w of node %s in backup set %s", ErrNoSnapshot, tags[1][len(TagNode):], t.Set)
	}
	p := &plan{snap: *snap, target: "/"}
	if t.Into != "" && t.Dir != "" {
		return nil, errors.New("restore into a volume and below a target directory exclude each other")
	}
	if t.Into != "" && t.PVC == "" && len(t.Paths) != 1 {
		return nil, fmt.Errorf("restore into %s: name the one directory whose contents go there (a PVC or one path)", t.Into)
	}
	if dir := t.Dir + t.Into; dir != "" {
		if !filepath.IsAbs(dir) {
			return nil, fmt.Errorf("--target %q: must be an absolute path on the node", dir)
		}
		p.target = filepath.Clean(dir)
		if e.InContainer {
			mi, err := os.Open("/proc/self/mountinfo")
			if err != nil {
				return nil, fmt.Errorf("--target %s: tell whether it is on the node: %w", t.Dir, err)
			}
			err = onNode(p.target, mi)
			mi.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	switch {
	case t.PVC != "":
		dir, err := e.pvcDir(ctx, snap, t.PVC)
		if err != nil {
			return nil, err
		}
		p.includes = []string{dir}
	case len(t.Paths) > 0:
		if p.includes, err = cleanPaths(t.Paths, snap.Paths); err != nil {
			return nil, err
		}
	default:
		p.includes = snap.Paths
	}
	if t.Into != "" {
		p.from = p.includes[0]
		if p.target == "/" {
			return nil, fmt.Errorf("restore into %s: refusing to restore a directory's contents into /", t.Into)
		}
	}
	return p, nil
}

// pvcDir finds the claim's directory in the snapshot: a root's child named
// the local-path way, or a PV's path recorded from the API.
func (e *Engine) pvcDir(ctx context.Context, snap *restic.Snapshot, claim string) (string, error) {
	tagged := false
	for _, t := range snap.Tags {
		if t == TagPVC+claim {
			tagged = true
		}
	}
	if !tagged {
		return "", fmt.Errorf("%w: the snapshot of node %s holds no PVC %s (it holds: %s)", ErrNoSnapshot, snap.Hostname, claim, strings.Join(pvcTags(snap.Tags), ", "))
	}
	var found string
	err := e.Repo.Ls(ctx, snap.ID, snap.Paths, func(n restic.Node) {
		if m := pvcDirRE.FindStringSubmatch(filepath.Base(n.Path)); m != nil && n.Type == "dir" && m[1]+"/"+m[2] == claim {
			found = n.Path
		}
	})
	if err != nil {
		return "", e.explain(err)
	}
	if found == "" && e.PVs != nil {
		if pvs, err := e.PVs(ctx); err == nil {
			for p, c := range pvs {
				if c == claim && withinAny(snap.Paths, p) {
					found = filepath.Clean(p)
				}
			}
		}
	}
	if found == "" {
		return "", fmt.Errorf("%w: PVC %s is tagged in snapshot %s but its directory was not found", ErrNoSnapshot, claim, snap.ShortID)
	}
	return found, nil
}

func pvcTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if c, ok := strings.CutPrefix(t, TagPVC); ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// local is where a snapshot path lands.
func (p *plan) local(snapPath string) string {
	if p.from != "" {
		rel, _ := filepath.Rel(p.from, snapPath)
		return filepath.Join(p.target, rel)
	}
	return filepath.Join(p.target, snapPath)
}

// snapPath is the snapshot path of a local one below the target.
func (p *plan) snapPath(local string) string {
	rel, _ := filepath.Rel(p.target, local)
	if p.from != "" {
		return filepath.Join(p.from, rel)
	}
	return "/" + rel
}

// resticOptions restore the plan: a directory's contents into the target
// are restic's SNAPSHOT:SUBFOLDER.
func (p *plan) resticOptions(dryRun bool) restic.RestoreOptions {
	if p.from != "" {
		return restic.RestoreOptions{Snapshot: p.snap.ID + ":" + p.from, Target: p.target, DryRun: dryRun}
	}
	return restic.RestoreOptions{Snapshot: p.snap.ID, Target: p.target, Includes: p.includes, DryRun: dryRun}
}

// Preview runs the restore dry: what would be created, replaced and left
// alone.
func (e *Engine) Preview(ctx context.Context, t Target) (*Preview, error) {
	if err := e.share(ctx); err != nil {
		return nil, err
	}
	defer e.unshare()
	p, err := e.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	return e.preview(ctx, p)
}

func (e *Engine) preview(ctx context.Context, p *plan) (*Preview, error) {
	// restic's dry run names directories too; ls tells files from them.
	inSnap := map[string]restic.Node{}
	err := e.Repo.Ls(ctx, p.snap.ID, nil, func(n restic.Node) {
		if withinAny(p.includes, n.Path) {
			inSnap[n.Path] = n
		}
	})
	if err != nil {
		return nil, e.explain(err)
	}
	pv := &Preview{SnapshotID: p.snap.ID, Target: p.target, Includes: p.includes}
	var outside []string
	_, err = e.Repo.Restore(ctx, p.resticOptions(true), func(a restic.RestoreAction) {
		// restic names items by their path in the snapshot (below the
		// subfolder restored into the target); they land below the target.
		snapPath := filepath.Clean(a.Item)
		if p.from != "" {
			snapPath = filepath.Join(p.from, snapPath)
		}
		local := p.local(snapPath)
		if !filepath.IsAbs(a.Item) || !within(p.target, local) {
			outside = append(outside, a.Item)
			return
		}
		n, ok := inSnap[snapPath]
		if !ok {
			return
		}
		change := func(kind string, size int64) Change {
			return Change{Path: local, Kind: kind, Size: size, Now: stateOf(local), Backup: Backed{Type: n.Type, Size: n.Size, MTime: n.MTime}}
		}
		if n.Type == "dir" {
			// A directory where the node now has a file or a symlink:
			// restic would remove what is there; it is moved aside
			// instead, and a symlink is never followed out of the target.
			if st, err := os.Lstat(local); err == nil && !st.IsDir() {
				pv.Change.add(0)
				pv.addChange(change("change", 0))
			}
			return
		}
		switch a.Action {
		case "restored":
			pv.Create.add(n.Size)
			pv.addChange(change("create", n.Size))
		case "updated":
			if symlinkInPath(p.target, local) {
				// Below a symlink that becomes a directory again: the
				// file is created there, nothing outside is touched.
				pv.Create.add(n.Size)
				pv.addChange(change("create", n.Size))
				return
			}
			pv.Change.add(n.Size)
			pv.addChange(change("change", n.Size))
		case "unchanged":
			pv.Unchanged.add(n.Size)
		}
	}, nil)
	if err != nil {
		return nil, e.explain(err)
	}
	if len(outside) > 0 {
		return nil, fmt.Errorf("refusing to restore: restic would write %s outside the target %s", outside[0], p.target)
	}
	// What is there now and not in the snapshot stays as it is.
	for _, inc := range p.includes {
		_ = filepath.WalkDir(p.local(inc), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			snapPath := path
			if p.target != "/" {
				snapPath = p.snapPath(path)
			}
			if _, ok := inSnap[snapPath]; !ok {
				if info, err := d.Info(); err == nil {
					pv.Extra.add(info.Size())
				}
			}
			return nil
		})
	}
	sort.Slice(pv.Changes, func(i, j int) bool { return pv.Changes[i].Path < pv.Changes[j].Path })
	pv.Digest = pv.digest()
	e.previews.put(pv)
	return pv, nil
}

// symlinkInPath reports whether a directory between root and p (both
// excluded) is a symlink.
func symlinkInPath(root, p string) bool {
	rel, err := filepath.Rel(root, filepath.Dir(p))
	if err != nil || rel == "." {
		return false
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if st, err := os.Lstat(cur); err == nil && st.Mode()&os.ModeSymlink != 0 {
			return true
		}
	}
	return false
}

func (pv *Preview) addChange(c Change) {
	if len(pv.Changes) >= MaxChanges {
		pv.Truncated = true
		return
	}
	pv.Changes = append(pv.Changes, c)
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Files, Bytes int64
	// AsideDir holds the files the restore replaced; empty when none.
	AsideDir string
}

// Restore brings the files back. It previews again first and, when
// confirmed is a preview's digest, refuses (ErrPreviewChanged, naming what
// changed) unless the node still gives that digest: nothing is moved or
// written before. An empty confirmed restores whatever the node holds now.
// Files it would replace, and files that appeared where it creates one,
// are first moved into a dated directory under AsideDir (never deleted);
// files the snapshot does not hold are left alone. If the restore fails (restic, the
// store, a move), what was moved aside is put back and what restic had
// written moved out of the way, so the node keeps its old files; a journal
// written before the first move lets an agent killed half-way do the same
// when it starts again (RecoverRestores).
func (e *Engine) Restore(ctx context.Context, t Target, confirmed string, progress func(restic.RestoreStatus)) (*RestoreResult, error) {
	if err := e.lockLive(ctx); err != nil {
		return nil, err
	}
	defer e.unlockLive()
	p, err := e.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	pv, err := e.preview(ctx, p)
	if err != nil {
		return nil, err
	}
	if confirmed != "" && confirmed != pv.Digest {
		return nil, fmt.Errorf("%w on node %s: %s; nothing was moved or restored: run the restore again to see the new preview", ErrPreviewChanged, e.Node, whatChanged(e.previews.get(confirmed), pv))
	}
	if pv.Truncated {
		// The full list is needed to move every replaced file aside.
		return nil, fmt.Errorf("restore would replace more than %d files at once; restore narrower paths (--path)", MaxChanges)
	}
	j := &journal{Snapshot: p.snap.ID, Aside: filepath.Join(e.AsideDir, time.Now().UTC().Format("20060102T150405Z")+"-"+p.snap.ShortID)}
	for _, c := range pv.Changes {
		switch c.Kind {
		case "change":
			if symlinkInPath(p.target, c.Path) {
				return nil, fmt.Errorf("refusing to restore: %s lies below a symlink, moving it aside could touch files outside %s", c.Path, p.target)
			}
			j.Moves = append(j.Moves, c.Path)
		case "create":
			// Something may have appeared there since the preview's
			// look: restic would overwrite it, so it goes aside too.
			if _, err := os.Lstat(c.Path); err == nil && !symlinkInPath(p.target, c.Path) {
				j.Moves = append(j.Moves, c.Path)
				continue
			}
			j.Creates = append(j.Creates, c.Path)
		}
	}
	if err := j.save(); err != nil {
		return nil, fmt.Errorf("record the restore before changing anything: %w; nothing was changed", err)
	}
	res := &RestoreResult{}
	for i, path := range j.Moves {
		if res.AsideDir == "" {
			res.AsideDir = j.Aside
		}
		if err := durable.MoveAside(path, filepath.Join(j.Aside, path)); err != nil {
			return nil, j.undoAfter(fmt.Errorf("move %s aside before restoring it: %w", path, err), i)
		}
	}
	if _, err := e.Repo.Restore(ctx, p.resticOptions(false), nil, progress); err != nil {
		// What restic could not restore, and why (a pack missing from
		// the store names the pack).
		return nil, j.undoAfter(fmt.Errorf("%w%s", e.explain(err), restic.Problems(err)), len(j.Moves))
	}
	if err := j.done(); err != nil {
		return nil, err
	}
	res.Files, res.Bytes = pv.Create.Files+pv.Change.Files, pv.Create.Bytes+pv.Change.Bytes
	return res, nil
}

// journal is a file restore in progress, written before anything moves:
// what goes aside (Moves, under Aside) and what restic will create. It is
// removed when the restore succeeded or was undone.
type journal struct {
	Snapshot string   `json:"snapshot"`
	Aside    string   `json:"aside"`
	Moves    []string `json:"moves,omitempty"`
	Creates  []string `json:"creates,omitempty"`
}

func (j *journal) path() string { return j.Aside + ".journal.json" }

func (j *journal) save() error {
	if err := durable.MkdirAll(filepath.Dir(j.Aside), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(j.path(), data, 0o600)
}

func (j *journal) done() error {
	if err := os.Remove(j.path()); err != nil {
		return fmt.Errorf("the restore is done, but its journal %s stays: %w", j.path(), err)
	}
	return durable.SyncDir(filepath.Dir(j.path()))
}

// undo puts the node's files back as they were before the restore: what
// restic wrote is moved to <aside>.failed (kept, never deleted), what was
// moved aside goes back to its place. Only paths whose aside copy exists
// are put back, so it is safe after a crash at any point.
func (j *journal) undo() error {
	failed := j.Aside + ".failed"
	var errs []error
	outOfTheWay := func(path string) {
		if _, err := os.Lstat(path); err == nil {
			if err := durable.MoveAside(path, filepath.Join(failed, path)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, path := range j.Creates {
		outOfTheWay(path)
	}
	for i := len(j.Moves) - 1; i >= 0; i-- {
		path := j.Moves[i]
		aside := filepath.Join(j.Aside, path)
		if _, err := os.Lstat(aside); err != nil {
			continue // never moved
		}
		outOfTheWay(path)
		if err := durable.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := durable.Rename(aside, path); err != nil {
			errs = append(errs, fmt.Errorf("put %s back from %s: %w", path, aside, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return j.done()
}

// undoAfter undoes the restore after cause and says what the node holds.
func (j *journal) undoAfter(cause error, moved int) error {
	if err := j.undo(); err != nil {
		return fmt.Errorf("%w; putting the node's files back failed too (%v): the %d file(s) moved aside are in %s, the journal is %s", cause, err, moved, j.Aside, j.path())
	}
	return fmt.Errorf("%w; nothing was restored: the node's files are as they were", cause)
}

// RecoverRestores undoes file restores a killed agent left half-done (a
// journal without the restore having finished). It returns what it put
// back, by journal.
func (e *Engine) RecoverRestores() ([]string, error) {
	journals, err := filepath.Glob(filepath.Join(e.AsideDir, "*.journal.json"))
	if err != nil {
		return nil, err
	}
	var undone []string
	var errs []error
	for _, path := range journals {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var j journal
		if err := json.Unmarshal(data, &j); err != nil || j.Aside+".journal.json" != path {
			errs = append(errs, fmt.Errorf("restore journal %s is unreadable (%v): check %s by hand", path, err, strings.TrimSuffix(path, ".journal.json")))
			continue
		}
		if err := j.undo(); err != nil {
			errs = append(errs, fmt.Errorf("undo the restore of %s: %w", j.Snapshot, err))
			continue
		}
		undone = append(undone, path)
	}
	return undone, errors.Join(errs...)
}
