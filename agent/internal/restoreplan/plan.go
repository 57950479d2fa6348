package restoreplan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// Step states, as the state file records them.
const (
	Pending = "pending"
	Running = "running"
	Done    = "done"
	Failed  = "failed"
)

// Steps of the etcd flavour, in order: the snapshot file checked again,
// the member stopped, its data dir replaced, the member started, and the
// cluster healthy again.
const (
	StepVerify   = "verify-snapshot"
	StepStop     = "stop"
	StepRestore  = "restore-data-dir"
	StepStart    = "start"
	StepHealthy  = "wait-healthy"
	healthyLimit = 5 * time.Minute
)

// Step is one step of a plan as recorded on the node.
type Step struct {
	Name     string     `json:"name"`
	State    string     `json:"state"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	// Detail is what the step left behind (where the old data dir went).
	Detail string `json:"detail,omitempty"`
}

// Plan is one node's part of a restore, kept in a state file so that it
// survives the agent being restarted: a finished step is never run again,
// an interrupted one is resumed where that is safe.
type Plan struct {
	ID      string    `json:"id"`
	Node    string    `json:"node"`
	Flavor  string    `json:"flavor"`
	Created time.Time `json:"created"`
	// Snapshot is the verified local copy to restore from, with the
	// metadata it was verified against.
	Snapshot       string `json:"snapshot"`
	SnapshotPath   string `json:"snapshotPath"`
	SnapshotSHA256 string `json:"snapshotSHA256"`
	SnapshotSize   int64  `json:"snapshotSize"`
	Member         Member `json:"member"`
	// Staging is the member's new data dir, built before anything stops
	// (the etcd flavour); the restore step swaps it in.
	Staging string `json:"staging,omitempty"`
	// Role is the k3s flavour's part: reset or rejoin.
	Role string `json:"role,omitempty"`
	// K3sDataDir is k3s's data dir (--data-dir of the reset).
	K3sDataDir string `json:"k3sDataDir,omitempty"`
	// OtherPeerURLs: the reset server waits until no etcd answers there.
	OtherPeerURLs []string `json:"otherPeerURLs,omitempty"`
	// BootstrapDir holds the server token (and encryption config) fetched
	// from the store for a new host, put in place by put-bootstrap-files.
	BootstrapDir string `json:"bootstrapDir,omitempty"`
	// ResetClientURLs: a rejoining server waits until the reset server's
	// etcd is healthy there.
	ResetClientURLs []string `json:"resetClientURLs,omitempty"`
	// PeersWait bounds wait-peers-stopped and wait-reset-server (0:
	// PeersLimit).
	PeersWait time.Duration `json:"peersWait,omitempty"`
	// Started is set when the plan is told to run; a prepared plan that
	// was never started stops nothing.
	Started bool   `json:"started"`
	Steps   []Step `json:"steps"`
	// RollBackReason is set when the plan was rolled back before its
	// barrier: why (this step failed, another member failed, no word from
	// the coordinator).
	RollBackReason string `json:"rollBackReason,omitempty"`

	// mu guards the fields while a Runner carries the plan out: it
	// writes them under mu, Save and Copy read them under it.
	mu sync.Mutex
}

// Copy is a copy of the plan as its state file would record it now,
// safe to take while a Runner carries the plan out.
func (p *Plan) Copy() *Plan {
	p.mu.Lock()
	data, err := json.Marshal(p)
	p.mu.Unlock()
	var c Plan
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		// A plan is strings, times and slices of them: it always encodes.
		panic(fmt.Sprintf("copy restore plan %s: %v", p.ID, err))
	}
	return &c
}

// update changes the plan under its lock.
func (p *Plan) update(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
}

// StepNames are the plan's steps in order.
func (p *Plan) StepNames() []string {
	names := make([]string, 0, len(p.Steps))
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	return names
}

// Finished reports whether every step is done or one failed (and a
// roll-back, if one began, has ended).
func (p *Plan) Finished() bool {
	if p.RollBackReason != "" && len(p.Steps) > 0 {
		last := p.Steps[len(p.Steps)-1]
		return last.Name != StepRollBack || last.State == Done || last.State == Failed
	}
	for _, s := range p.Steps {
		if s.State == Failed {
			return true
		}
		if s.State != Done {
			return false
		}
	}
	return true
}

// FailedStep is the step that failed, nil when none did.
func (p *Plan) FailedStep() *Step {
	for i := range p.Steps {
		if p.Steps[i].State == Failed {
			return &p.Steps[i]
		}
	}
	return nil
}

// Hint says how to go on after a failed step.
func (p *Plan) Hint() string {
	if p.RollBackReason != "" {
		return p.rollBackHint()
	}
	f := p.FailedStep()
	if f == nil {
		return ""
	}
	// Where the data dir from before the restore went.
	aside := ""
	for _, s := range p.Steps {
		if (s.Name == StepRestore || s.Name == StepClusterReset || s.Name == StepMoveAside) && s.Detail != "" {
			aside = s.Detail
		}
	}
	start, what := "restore.startCommand", "the member"
	if p.Flavor == "k3s" {
		start, what = "systemctl start k3s, or restore.startCommand", "k3s"
	}
	if p.Role == RoleSQLite {
		switch f.Name {
		case StepSwapStateDB:
			return fmt.Sprintf("k3s is stopped here: files of %s already moved are named state.db.aside-%s[-wal,-shm]; move them back (state.db, state.db-wal, state.db-shm together) and start k3s (%s)", p.stateDB(), p.ID, start)
		case StepStart, StepHealthy:
			return fmt.Sprintf("see the error: when it says the previous database is back, k3s runs on it and the restored copy is at %s.failed-%s; otherwise the restored copy is in place and the previous files are state.db.aside-%s[-wal,-shm]", p.stateDB(), p.ID, p.ID)
		}
	}
	switch f.Name {
	case StepWaitLayers:
		if p.Role == RoleRejoin && !exists(p.Member.DataDir) {
			return fmt.Sprintf("k3s is stopped here and there is no data dir at %s (a new host; the files kept with the snapshot are in place): once the other layers are restored and the reset server runs, start k3s (%s): it joins", p.Member.DataDir, start)
		}
		if p.Role == RoleRejoin {
			return fmt.Sprintf("k3s is stopped here and its data dir was not changed (the files kept with the snapshot are in place): once the other layers are restored and the reset server runs, move %s aside and start k3s (%s): it joins", p.Member.DataDir, start)
		}
		where := ""
		if aside != "" {
			where = fmt.Sprintf(" (the previous data dir is at %s)", aside)
		}
		return fmt.Sprintf("the restored datastore is in place%s and %s was not started, so no pod starts on volumes that are not back: restore what failed, then start %s (%s)", where, what, what, start)
	case StepVerify:
		return "nothing was stopped: fetch the snapshot again (a new restore) or pick another one"
	case StepStop:
		return fmt.Sprintf("the stop command failed: the member may be stopped or still run, its data dir was not changed; start it (%s) if it is down, check restore.stopCommand and run the restore again", start)
	case StepWaitPeersStopped:
		return fmt.Sprintf("k3s is stopped here and nothing was changed: stop k3s on the servers named and run the restore again, or start k3s here (%s) to roll back", start)
	case StepWaitResetServer:
		return fmt.Sprintf("k3s is stopped here and nothing was changed: once the reset server is healthy, move %s aside and start k3s (it rejoins); or start k3s (%s) to roll back", p.Member.DataDir, start)
	case StepClusterReset:
		if aside != "" {
			return fmt.Sprintf("k3s moved the previous data dir to %s; check the reset's output. To roll back, move %s aside, move %s back to %s and start k3s (%s)", aside, p.Member.DataDir, aside, p.Member.DataDir, start)
		}
		return fmt.Sprintf("the data dir was not moved; check the reset's output, then start k3s (%s) to roll back or restore again", start)
	case StepMoveAside:
		return fmt.Sprintf("k3s is stopped here: move %s aside by hand, then start k3s (%s)", p.Member.DataDir, start)
	case StepRestore:
		return fmt.Sprintf("the member is stopped and its data dir is as before (or moved aside to %q); start it with %s to roll back, or fix the cause and restore again", aside, start)
	}
	if aside != "" {
		return fmt.Sprintf("the restored data dir is in place; the previous one is at %s. Start %s by hand (%s) and check its log; to roll back, stop it and move %s back", aside, what, start, aside)
	}
	return fmt.Sprintf("start %s by hand (%s) and check its log", what, start)
}

// rollBackHint says where a plan rolled back before its barrier left the
// node.
func (p *Plan) rollBackHint() string {
	start := "restore.startCommand"
	if p.Flavor == "k3s" {
		start = "systemctl start k3s, or restore.startCommand"
	}
	last := p.Steps[len(p.Steps)-1]
	if last.Name != StepRollBack {
		return fmt.Sprintf("rolled back (%s) before this member was stopped: nothing was stopped or changed here", p.RollBackReason)
	}
	switch last.State {
	case Done:
		return fmt.Sprintf("rolled back (%s): %s, and healthy; the data dir was not changed", p.RollBackReason, last.Detail)
	case Failed:
		return fmt.Sprintf("rolled back (%s), but the roll-back failed: the data dir %s was not changed; start the member by hand (%s) and check its log", p.RollBackReason, p.Member.DataDir, start)
	}
	return fmt.Sprintf("rolling back (%s): the data dir %s was not changed", p.RollBackReason, p.Member.DataDir)
}

// Plans keeps the state files, one per plan, under Dir.
type Plans struct{ Dir string }

// Hold puts the barrier into prepared plan id (Plan.Hold), holding the
// node's restore lock so that no runner starts it meanwhile.
func (ps Plans) Hold(id string) (*Plan, error) {
	unlock, err := ps.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := ps.Load(id)
	if err != nil {
		return nil, err
	}
	if err := p.Hold(); err != nil {
		return nil, err
	}
	return p, ps.Save(p)
}

// ErrBusy means a restore that has not finished holds the node.
var ErrBusy = errors.New("another restore is in progress on this node")

func (ps Plans) path(id string) string { return filepath.Join(ps.Dir, id+".json") }

// Save writes the plan's state file atomically.
func (ps Plans) Save(p *Plan) error {
	if err := durable.MkdirAll(ps.Dir, 0o700); err != nil {
		return err
	}
	p.mu.Lock()
	data, err := json.MarshalIndent(p, "", "  ")
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return durable.WriteFile(ps.path(p.ID), data, 0o600)
}

// Load reads one plan.
func (ps Plans) Load(id string) (*Plan, error) {
	data, err := os.ReadFile(ps.path(id))
	if err != nil {
		return nil, err
	}
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("restore plan %s: %w", id, err)
	}
	return &p, nil
}

// List returns every plan, newest first.
func (ps Plans) List() ([]*Plan, error) {
	entries, err := os.ReadDir(ps.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Plan
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		p, err := ps.Load(id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// lock holds the node's restore lock (a file lock beside the plans, so
// the agent and `dr-agent etcd restore` exclude each other) or fails at
// once with ErrBusy.
func (ps Plans) lock() (func(), error) {
	if err := durable.MkdirAll(ps.Dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(ps.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (another process holds %s)", ErrBusy, f.Name())
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Unfinished returns the started plan that has not finished, if any.
func (ps Plans) Unfinished() (*Plan, error) {
	list, err := ps.List()
	if err != nil {
		return nil, err
	}
	for _, p := range list {
		if p.Started && !p.Finished() {
			return p, nil
		}
	}
	return nil, nil
}

// Host stops and starts what runs the member (k3s, or etcd itself).
type Host interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// Runner carries plans out.
type Runner struct {
	Plans Plans
	Host  Host
	// Healthy reports whether the local member is healthy (with quorum).
	Healthy func(ctx context.Context) error
	// Reset runs k3s's cluster reset from a snapshot file (k3s flavour).
	Reset func(ctx context.Context, snapshotPath string) error
	// ResetHealthy reports whether the reset server's etcd is healthy at
	// its client URLs (k3s flavour, servers that rejoin).
	ResetHealthy func(ctx context.Context, clientURLs []string) error
	// KineHealthy reports whether kine serves the datastore again (a k3s
	// server on SQLite).
	KineHealthy func(ctx context.Context) error
	// KineLimit bounds the wait for kine on a restored copy before the
	// previous database is put back (default 5 minutes).
	KineLimit time.Duration
	// OnStep is told every step change, after it is saved.
	OnStep func(p *Plan, s Step)
	// Running reports whether the local member answers at all (with or
	// without quorum): a roll-back does not start a member that runs.
	Running func(ctx context.Context) bool
	// Gate brings the coordinator's word to a plan at its barrier;
	// BarrierLimit (default BarrierLimit) bounds the wait for it.
	Gate         *Gate
	BarrierLimit time.Duration
	// StartGate brings the coordinator's word to a plan held before its
	// start (starthold.go); StartHoldLimit (default StartHoldLimit)
	// bounds the wait for it.
	StartGate      *Gate
	StartHoldLimit time.Duration

	mu sync.Mutex
}

// Run executes the plan's remaining steps in order. A step recorded as
// running when the agent died is run again: each is safe to repeat
// (stopping a stopped member, restoring into a staging dir that is rebuilt,
// a swap that checks what is already in place). A plan with a barrier
// that fails, or is called off, before it passed the barrier is rolled
// back (see barrier.go).
func (r *Runner) Run(ctx context.Context, p *Plan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := r.Plans.lock()
	if err != nil {
		return err
	}
	defer unlock()
	// The staged bootstrap files hold the server token in the clear: once
	// the plan is over (done, failed, rolled back) only the data dir's own
	// copy remains.
	defer func() {
		if p.Finished() {
			removeStagedBootstrap(p)
		}
	}()
	p.update(func() { p.Started = true })
	if p.RollBackReason != "" {
		return r.resumeRollBack(ctx, p)
	}
	held := slices.Contains(p.StepNames(), StepBarrier)
	for i := range p.Steps {
		s := &p.Steps[i]
		if held && !p.PastBarrier() {
			if w, ok := r.Gate.said(p.ID); ok && w.rollBack {
				return r.rolledBack(ctx, p, w.reason, nil)
			}
		}
		switch s.State {
		case Done:
			continue
		case Failed:
			return fmt.Errorf("step %s failed earlier: %s", s.Name, s.Error)
		}
		err := r.runStep(ctx, p, s, func() error { return r.step(ctx, p, s) })
		if err != nil {
			if !p.PastBarrier() {
				reason := fmt.Sprintf("step %s failed on %s", s.Name, p.Node)
				var rb errRollBack
				if errors.As(err, &rb) {
					reason = rb.reason
				}
				return r.rolledBack(ctx, p, reason, err)
			}
			return err
		}
		if s.Name == StepRestore || s.Name == StepClusterReset || s.Name == StepSwapStateDB {
			dropCache(p)
		}
	}
	return nil
}

// rolledBack rolls p back and says so, with the error that made it.
func (r *Runner) rolledBack(ctx context.Context, p *Plan, reason string, cause error) error {
	if err := r.rollBack(ctx, p, reason); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back: %w", err))
	}
	if cause != nil {
		return fmt.Errorf("%w; rolled back", cause)
	}
	return fmt.Errorf("rolled back before the barrier: %s", reason)
}

// resumeRollBack finishes a roll-back the agent was doing when it stopped.
func (r *Runner) resumeRollBack(ctx context.Context, p *Plan) error {
	last := &p.Steps[len(p.Steps)-1]
	if last.Name == StepRollBack && (last.State == Done || last.State == Failed) {
		return nil
	}
	if last.Name == StepRollBack {
		// Interrupted: the step is run again, not added again.
		p.update(func() { p.Steps = p.Steps[:len(p.Steps)-1] })
	}
	return r.rollBack(ctx, p, p.RollBackReason)
}

// runStep records step s as running, does it, and records how it ended.
func (r *Runner) runStep(ctx context.Context, p *Plan, s *Step, do func() error) error {
	p.update(func() {
		now := time.Now().UTC()
		if s.Started == nil {
			s.Started = &now
		}
		s.State, s.Error = Running, ""
	})
	if err := r.save(p, s); err != nil {
		return err
	}
	err := do()
	p.update(func() {
		end := time.Now().UTC()
		s.Finished = &end
		if err != nil {
			s.State, s.Error = Failed, err.Error()
		} else {
			s.State = Done
		}
	})
	if err != nil {
		if serr := r.save(p, s); serr != nil {
			return errors.Join(err, serr)
		}
		return fmt.Errorf("step %s: %w", s.Name, err)
	}
	return r.save(p, s)
}

// save records the plan and tells OnStep a copy of step s.
func (r *Runner) save(p *Plan, s *Step) error {
	if err := r.Plans.Save(p); err != nil {
		return fmt.Errorf("record step %s: %w", s.Name, err)
	}
	if r.OnStep != nil {
		p.mu.Lock()
		st := *s
		p.mu.Unlock()
		r.OnStep(p, st)
	}
	return nil
}

// setDetail records what step s leaves behind; it is on disk before the
// step acts on it.
func (r *Runner) setDetail(p *Plan, s *Step, detail string) error {
	p.update(func() { s.Detail = detail })
	return r.Plans.Save(p)
}

func (r *Runner) step(ctx context.Context, p *Plan, s *Step) error {
	switch s.Name {
	case StepVerify:
		if p.Role == RoleSQLite {
			return verifyFile(p.Staging, p.SnapshotSHA256, p.SnapshotSize)
		}
		if p.Staging != "" {
			return verifyStaging(p)
		}
		return verifyFile(p.SnapshotPath, p.SnapshotSHA256, p.SnapshotSize)
	case StepStop:
		return r.Host.Stop(ctx)
	case StepBarrier:
		return r.barrier(ctx, p)
	case StepWaitLayers:
		return r.waitLayers(ctx, p)
	case StepRestore:
		if s.Detail == "" {
			// Where the old data dir goes is on disk before it moves.
			if err := r.setDetail(p, s, fmt.Sprintf("%s.aside-%s", filepath.Clean(p.Member.DataDir), p.ID)); err != nil {
				return err
			}
		}
		if p.Staging == "" && !exists(s.Detail) {
			// Nothing was built before the stop: build from the verified
			// copy now.
			snap := &dbsnap.Snapshot{Name: p.Snapshot, SHA256: p.SnapshotSHA256, Size: p.SnapshotSize}
			if _, err := BuildFromFile(p.SnapshotPath, snap, p.Member, StagingDir(p.Member.DataDir), p.ID); err != nil {
				return err
			}
		}
		return SwapDataDir(StagingDir(p.Member.DataDir), p.Member.DataDir, s.Detail)
	case StepStart:
		if p.Role == RoleSQLite {
			if err := r.Host.Start(ctx); err != nil {
				return r.sqliteStepFailed(ctx, p, err)
			}
			return nil
		}
		return r.Host.Start(ctx)
	case StepHealthy:
		if p.Role == RoleSQLite {
			if err := poll(ctx, r.kineLimit(), "kine does not serve the restored database", r.KineHealthy); err != nil {
				return r.sqliteStepFailed(ctx, p, err)
			}
			return nil
		}
		return poll(ctx, healthyLimit, "the member is not healthy", r.Healthy)
	case StepSwapStateDB:
		if s.Detail == "" {
			// Where the old files go is on disk before they move.
			if err := r.setDetail(p, s, p.stateDB()+".aside-"+p.ID); err != nil {
				return err
			}
		}
		return swapStateDB(p.stateDB(), p.Staging, ".aside-"+p.ID)
	case StepWaitPeersStopped:
		return waitPeersStopped(ctx, p.OtherPeerURLs, p.peersWait())
	case StepClusterReset:
		if r.Reset == nil {
			return errors.New("no k3s cluster reset configured here")
		}
		return r.clusterReset(ctx, p, s)
	case StepWaitResetServer:
		return poll(ctx, p.peersWait(), "the reset server's etcd is not healthy", func(ctx context.Context) error {
			return r.ResetHealthy(ctx, p.ResetClientURLs)
		})
	case StepBootstrap:
		moved, err := putBootstrapFiles(p.BootstrapDir, p.K3sDataDir, p.ID)
		if len(moved) > 0 && s.Detail == "" {
			p.update(func() { s.Detail = strings.Join(moved, ", ") })
		}
		return err
	case StepMoveAside:
		if s.Detail == "" {
			if err := r.setDetail(p, s, fmt.Sprintf("%s.aside-%s", filepath.Clean(p.Member.DataDir), p.ID)); err != nil {
				return err
			}
		}
		return moveAside(p.Member.DataDir, s.Detail)
	}
	return fmt.Errorf("unknown step %q", s.Name)
}

// poll calls check every 2 s until it succeeds or limit passes.
func poll(ctx context.Context, limit time.Duration, what string, check func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after %s: %w", what, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Discard removes a prepared plan that never started; a started one stays.
func (ps Plans) Discard(id string) error {
	p, err := ps.Load(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.Started {
		return fmt.Errorf("plan %s has started on %s: it is never discarded", id, p.Node)
	}
	if p.Role == RoleSQLite && p.Staging != "" {
		os.Remove(p.Staging)
	} else if p.Staging != "" {
		if b, err := ReadBuilt(p.Staging); err == nil && b.Plan == p.ID {
			os.Remove(builtPath(p.Staging))
			if err := os.RemoveAll(p.Staging); err != nil {
				return err
			}
		}
	}
	return os.Remove(ps.path(id))
}

// dropCache removes the local copy of the snapshot once it is restored:
// it is a cache of what the store keeps, and removed before the kernel
// writes it back, it costs no disk writes.
func dropCache(p *Plan) {
	if p.SnapshotPath != "" {
		os.Remove(p.SnapshotPath)
	}
}

// bootstrapSuffix names a plan's staged bootstrap files (stageBootstrap).
const bootstrapSuffix = ".bootstrap"

func removeStagedBootstrap(p *Plan) {
	if p.BootstrapDir != "" {
		os.RemoveAll(p.BootstrapDir)
	}
}

// SweepBootstrap removes the staged bootstrap files (the server token in
// the clear, <stateDir>/restore/<plan>.bootstrap) of every plan that is
// over or gone: what a plan that finished while the agent died left
// behind. An agent calls it when it starts. It returns what it removed.
func SweepBootstrap(stateDir string) ([]string, error) {
	ps := PlansIn(stateDir)
	staging := filepath.Join(stateDir, "restore")
	entries, err := os.ReadDir(staging)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), bootstrapSuffix)
		if !ok || !e.IsDir() {
			continue
		}
		p, err := ps.Load(id)
		switch {
		case err == nil && !p.Finished():
			// Prepared or running: its bootstrap step still needs them.
			continue
		case err != nil && !errors.Is(err, os.ErrNotExist):
			continue
		}
		dir := filepath.Join(staging, e.Name())
		if err := os.RemoveAll(dir); err != nil {
			return removed, fmt.Errorf("remove the staged bootstrap files %s: %w", dir, err)
		}
		removed = append(removed, dir)
	}
	return removed, nil
}
