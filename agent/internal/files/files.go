package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Errors the gRPC layer maps to codes.
var (
	ErrNoPaths       = errors.New("no paths to back up")
	ErrOutsideRoots  = errors.New("path outside the configured roots")
	ErrNotRepository = errors.New("not a restic repository")
	ErrBusy          = errors.New("another file backup or restore is running on this node")
	ErrNoSnapshot    = errors.New("no file snapshot")
	ErrNoRepo        = errors.New("no restic repository yet")
)

// RepoDir is the repository's directory under the cluster's prefix.
const RepoDir = "restic"

// Engine backs up and restores one node's files.
type Engine struct {
	Node string
	Repo *restic.Repo
	// Store is the cluster's directory of the store; it tells an empty
	// location from one that holds something other than a repository.
	Store objstore.Store
	Paths agentconfig.PathSet
	// AsideDir receives what a restore replaces, one dated directory per
	// restore.
	AsideDir string
	// ClaimAbandoned is how long another node's initialisation claim may
	// go unrefreshed before it counts as abandoned (default 10 s).
	ClaimAbandoned time.Duration
	// PVs maps host paths to "namespace/name" from the API's
	// PersistentVolumes; optional, directory names are the fallback.
	PVs func(ctx context.Context) (map[string]string, error)
	// InContainer: the agent runs in a pod, where only mounted host
	// directories are the node's; a restore target elsewhere is refused.
	InContainer bool

	previews previewCache

	slotOnce sync.Once
	slot     *semaphore.Weighted
	live     chan struct{}
	ensureMu sync.Mutex
	ready    bool
}

// Roots are the configured paths that exist on the node, globs expanded.
func (e *Engine) Roots() ([]string, error) {
	if len(e.Paths.Paths) == 0 {
		return nil, fmt.Errorf("%w: node %s has none configured (restic.paths, or restic.nodes.%s.paths in the agent config)", ErrNoPaths, e.Node, e.Node)
	}
	var roots []string
	for _, p := range e.Paths.Paths {
		matches := []string{p}
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("restic path %q: %w", p, err)
			}
			matches = m
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.IsDir() {
				roots = append(roots, filepath.Clean(m))
			}
		}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: none of the configured paths exists on node %s (%s)", ErrNoPaths, e.Node, strings.Join(e.Paths.Paths, ", "))
	}
	sort.Strings(roots)
	return roots, nil
}

// within reports whether p is root or below it.
func within(root, p string) bool {
	root, p = filepath.Clean(root), filepath.Clean(p)
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

func withinAny(roots []string, p string) bool {
	for _, r := range roots {
		if within(r, p) {
			return true
		}
	}
	return false
}

// cleanPaths checks user-given paths: absolute, no "..", under one of
// roots.
func cleanPaths(paths, roots []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("path %q: must be absolute", p)
		}
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				return nil, fmt.Errorf("%w: %q contains \"..\"", ErrOutsideRoots, p)
			}
		}
		c := filepath.Clean(p)
		if !withinAny(roots, c) {
			return nil, fmt.Errorf("%w: %s is not under %s", ErrOutsideRoots, c, strings.Join(roots, ", "))
		}
		out = append(out, c)
	}
	return out, nil
}

// pvcDirRE is the local-path provisioner's directory name:
// pvc-<uid>_<namespace>_<claim>. Neither namespaces nor claim names may
// contain '_'.
var pvcDirRE = regexp.MustCompile(`^pvc-[0-9a-f-]+_([a-z0-9][a-z0-9-]*)_([a-z0-9][a-z0-9.-]*)$`)

// PVCs finds the PVC directories in roots: path → "namespace/name".
func (e *Engine) PVCs(ctx context.Context, roots []string) map[string]string {
	found := map[string]string{}
	for _, r := range roots {
		if m := pvcDirRE.FindStringSubmatch(filepath.Base(r)); m != nil {
			found[r] = m[1] + "/" + m[2]
			continue
		}
		entries, err := os.ReadDir(r)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			if m := pvcDirRE.FindStringSubmatch(ent.Name()); m != nil && ent.IsDir() {
				found[filepath.Join(r, ent.Name())] = m[1] + "/" + m[2]
			}
		}
	}
	if e.PVs != nil {
		if pvs, err := e.PVs(ctx); err == nil {
			for p, claim := range pvs {
				p = filepath.Clean(p)
				if withinAny(roots, p) {
					if _, err := os.Stat(p); err == nil {
						found[p] = claim
					}
				}
			}
		}
	}
	return found
}

// The node's operation slot. A backup reads the live files and runs
// alone. Restores read the repository and write only where they restore:
// they run side by side (a recovery restores a node's files and its
// database at once, as a drill rehearses them), except that two restores
// into the node's own paths (Restore) take turns (live).
const slotAlone = 1 << 20

func (e *Engine) slots() {
	e.slotOnce.Do(func() {
		e.slot = semaphore.NewWeighted(slotAlone)
		e.live = make(chan struct{}, 1)
	})
}

func (e *Engine) acquire(ctx context.Context, weight int64) error {
	e.slots()
	if e.slot.TryAcquire(weight) {
		return nil
	}
	if err := e.slot.Acquire(ctx, weight); err != nil {
		return fmt.Errorf("%w (gave up waiting: %v)", ErrBusy, err)
	}
	return nil
}

// lock takes the node's slot alone (a backup), waiting for the
// operations that hold it (a restore, a scheduled backup) until ctx ends.
func (e *Engine) lock(ctx context.Context) error { return e.acquire(ctx, slotAlone) }

func (e *Engine) unlock() { e.slot.Release(slotAlone) }

// share takes the node's slot beside other restores; a backup waiting
// for the slot goes first.
func (e *Engine) share(ctx context.Context) error { return e.acquire(ctx, 1) }

func (e *Engine) unshare() { e.slot.Release(1) }

// lockLive takes the slot beside other restores and the turn of the
// restores into the node's own paths.
func (e *Engine) lockLive(ctx context.Context) error {
	if err := e.share(ctx); err != nil {
		return err
	}
	select {
	case e.live <- struct{}{}:
		return nil
	case <-ctx.Done():
		e.unshare()
		return fmt.Errorf("%w (gave up waiting: %v)", ErrBusy, ctx.Err())
	}
}

func (e *Engine) unlockLive() {
	<-e.live
	e.unshare()
}

// ensure opens the repository, creating it on first use. A location that
// holds objects but no restic config is refused, never initialised over.
func (e *Engine) ensure(ctx context.Context, create bool) error {
	e.ensureMu.Lock()
	defer e.ensureMu.Unlock()
	if e.ready {
		return nil
	}
	ok, err := e.Repo.Exists(ctx)
	if err != nil {
		return e.explain(err)
	}
	if !ok {
		if err := e.create(ctx, create); err != nil {
			return err
		}
	}
	e.ready = true
	return nil
}

// Initialisation claims: every node's first backup may come at the same
// cron tick, and two concurrent `restic init`s leave a repository whose
// config matches only one node's key. So nodes claim the init in the store
// first; the oldest fresh claim (by the store's clock) initialises, the
// others wait for its config. A claim is written once (its time orders
// the election); beside it the node writes a heartbeat (claimAlive) every
// claimBeat while it waits or initialises. A claim whose heartbeat is
// older than claimAbandoned belongs to a node that died (its agent was
// killed): the nodes waiting on it remove it and elect again, instead of
// waiting initWait for a repository that never comes.
const (
	claimDir       = "restic-init/"
	claimAlive     = "restic-init-alive/"
	claimSettle    = 2 * time.Second
	claimStale     = 10 * time.Minute
	claimBeat      = 2 * time.Second
	claimAbandoned = 10 * time.Second
	initWait       = 3 * time.Minute
)

// errAbandoned means the claim waited on was left by a node that died.
var errAbandoned = errors.New("initialisation claim abandoned")

func (e *Engine) abandonedAfter() time.Duration {
	if e.ClaimAbandoned > 0 {
		return e.ClaimAbandoned
	}
	return claimAbandoned
}

func (e *Engine) create(ctx context.Context, create bool) error {
	if e.Store == nil {
		if !create {
			return fmt.Errorf("%w at %s: no file backup has been made", ErrNoRepo, e.where())
		}
		return e.explain(e.Repo.Init(ctx))
	}
	objs, err := e.Store.List(ctx, RepoDir+"/")
	if err != nil {
		return fmt.Errorf("look at %s/%s: %w", e.Store, RepoDir, err)
	}
	if len(objs) > 0 {
		if winner, _ := e.oldestClaim(ctx); winner != "" {
			if err := e.waitForRepo(ctx, winner); !errors.Is(err, errAbandoned) {
				return err
			}
		}
		return fmt.Errorf("%w: %s/%s holds %d object(s) (%s, ...) but no restic config; nothing was written there. Move them away or point the agent at another store", ErrNotRepository, e.Store, RepoDir, len(objs), objs[0].Key)
	}
	if !create {
		return fmt.Errorf("%w at %s: no file backup has been made", ErrNoRepo, e.where())
	}
	claim, alive := claimDir+e.Node, claimAlive+e.Node
	put := func(ctx context.Context, key string) error {
		_, err := e.Store.Put(ctx, key, strings.NewReader(e.Node), int64(len(e.Node)))
		return err
	}
	putClaim := func(ctx context.Context) error {
		if err := put(ctx, alive); err != nil {
			return err
		}
		return put(ctx, claim)
	}
	if err := putClaim(ctx); err != nil {
		return fmt.Errorf("claim the repository's initialisation in %s: %w", e.Store, err)
	}
	defer func() {
		e.Store.Delete(context.WithoutCancel(ctx), claim)
		e.Store.Delete(context.WithoutCancel(ctx), alive)
	}()
	beatCtx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go func() {
		t := time.NewTicker(claimBeat)
		defer t.Stop()
		for {
			select {
			case <-beatCtx.Done():
				return
			case <-t.C:
				_ = put(beatCtx, alive)
			}
		}
	}()
	select {
	case <-time.After(claimSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		winner, err := e.oldestClaim(ctx)
		if err != nil {
			return err
		}
		if winner == "" {
			// A waiter took ours for abandoned: claim again.
			if err := putClaim(ctx); err != nil {
				return fmt.Errorf("claim the repository's initialisation in %s: %w", e.Store, err)
			}
			continue
		}
		if winner == claim {
			return e.explain(e.Repo.Init(ctx))
		}
		err = e.waitForRepo(ctx, winner)
		if !errors.Is(err, errAbandoned) {
			return err
		}
		if err := e.Store.Delete(ctx, winner); objstore.Refused(err) {
			// Put/get-only credentials: the abandoned claim stays until
			// it is too old to count; wait a beat rather than spin.
			select {
			case <-time.After(claimBeat):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		} else if err != nil {
			return fmt.Errorf("remove the abandoned initialisation claim %s: %w", winner, err)
		}
		e.Store.Delete(ctx, claimAlive+strings.TrimPrefix(winner, claimDir))
	}
}

// oldestClaim is the key of the oldest claim younger than claimStale.
func (e *Engine) oldestClaim(ctx context.Context) (string, error) {
	best, err := e.claim(ctx, claimDir, "")
	if err != nil || best == nil {
		return "", err
	}
	return best.Key, nil
}

// claim is the object named key under dir ("": the oldest younger than
// claimStale), nil when there is none.
func (e *Engine) claim(ctx context.Context, dir, key string) (*objstore.ObjectInfo, error) {
	claims, err := e.Store.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("list initialisation claims in %s: %w", e.Store, err)
	}
	var best *objstore.ObjectInfo
	for i := range claims {
		c := &claims[i]
		if key != "" {
			if c.Key == key {
				return c, nil
			}
			continue
		}
		if time.Since(c.Modified) > claimStale {
			continue
		}
		if best == nil || c.Modified.Before(best.Modified) || (c.Modified.Equal(best.Modified) && c.Key < best.Key) {
			best = c
		}
	}
	return best, nil
}

// waitForRepo waits for another node to finish initialising; errAbandoned
// when that node's claim went stale or away without a repository.
func (e *Engine) waitForRepo(ctx context.Context, winner string) error {
	deadline := time.Now().Add(initWait)
	for {
		ok, err := e.Repo.Exists(ctx)
		if err != nil {
			return e.explain(err)
		}
		if ok {
			return nil
		}
		c, err := e.claim(ctx, claimDir, winner)
		if err != nil {
			return err
		}
		beat := c
		if c != nil {
			b, err := e.claim(ctx, claimAlive, claimAlive+strings.TrimPrefix(winner, claimDir))
			if err != nil {
				return err
			}
			if b != nil {
				beat = b
			}
		}
		if c == nil || time.Since(beat.Modified) > e.abandonedAfter() {
			if ok, err := e.Repo.Exists(ctx); err == nil && ok {
				return nil
			}
			return fmt.Errorf("%w: node %s", errAbandoned, strings.TrimPrefix(winner, claimDir))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s claimed the initialisation of %s but no repository appeared within %s", strings.TrimPrefix(winner, claimDir), e.where(), initWait)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) where() string {
	if e.Store != nil {
		return e.Store.String() + "/" + RepoDir
	}
	return e.Repo.Repository
}

// explain turns restic's failures into what the operator should do.
func (e *Engine) explain(err error) error {
	switch {
	case errors.Is(err, restic.ErrWrongPassword):
		return fmt.Errorf("wrong restic password: repository %s does not open with the password in %s (%w); give the agent the password the repository was created with", e.where(), e.Repo.PasswordFile, err)
	case errors.Is(err, restic.ErrLocked):
		return fmt.Errorf("restic repository %s is locked by another operation (still locked after %s): %w", e.where(), e.Repo.LockWait, err)
	}
	return err
}

// runLocked runs fn without waiting for locks first; when restic says the
// repository is locked, it removes stale locks (restic unlock leaves live
// ones: their process is alive or refreshed them lately) and runs fn again,
// now waiting up to the repository's LockWait for live locks to go.
func (e *Engine) runLocked(ctx context.Context, fn func(r *restic.Repo) error) error {
	quick := *e.Repo
	quick.LockWait = 0
	err := fn(&quick)
	if errors.Is(err, restic.ErrLocked) {
		if uerr := e.Repo.Unlock(ctx); uerr != nil {
			return e.explain(uerr)
		}
		err = fn(e.Repo)
	}
	return e.explain(err)
}
