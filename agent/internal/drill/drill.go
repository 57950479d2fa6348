package drill

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// Layers.
const (
	LayerEtcd     = "etcd"
	LayerFiles    = "files"
	LayerPostgres = "postgres"
	LayerBucket   = "bucket"
)

// Engine runs drill parts on one node.
type Engine struct {
	Node     string
	StateDir string
	// Store is the cluster's directory of the store.
	Store objstore.Store
	// Identity is the snapshot key the drill's request brought: etcd
	// snapshots and bucket copies are encrypted to its recipient. Nodes do
	// not hold it; it lives in memory for one request. Nil: an encrypted
	// part fails with ErrNoKey, unless Unattended.
	Identity age.Identity
	// Unattended is a scheduled drill, which runs without the plugin and
	// so without the key: what needs decrypting is checked as far as it
	// can be without it (the stored objects against their checksums) and
	// the part is reported not rehearsed (Result.NotRun), never passed.
	Unattended bool
	// Files is the node's restic engine; nil when file backups are off
	// (FilesOff says why).
	Files    *files.Engine
	FilesOff string
	// Buckets are the bucket sources this agent runs (their buckets'
	// endpoints and credentials): a bucket part restores into a scratch
	// bucket beside the source's.
	Buckets map[string]objstore.Config
	Log     *slog.Logger
	// Records is what a record must pass (its signature) before what it
	// names is rehearsed: a plan's etcd snapshot, a postgres part's base
	// backup. Nil trusts no base backup, and rehearses a plan's snapshot
	// unchecked (the RPC's caller checked it).
	Records *signature.Policy
}

// records is the policy a base backup's record must pass.
func (e *Engine) records() signature.Policy {
	if e.Records == nil {
		return signature.Policy{}
	}
	return *e.Records
}

// Progress reports a step starting (phase is the step's name).
type Progress func(phase, message string)

// Step is one timed step of a part.
type Step struct {
	Name       string
	Start, End time.Time
	OK         bool
	Detail     string
	Error      string
	// Restore: a real recovery does this step too (the RTO counts it).
	Restore bool
}

// Result is what a part found.
type Result struct {
	Layer, Name, Node string
	OK                bool
	Steps             []Step
	Problems          []string
	RecoveryPoint     time.Time
	Facts             map[string]string
	Counts            map[string]int64
	Checks            []pgbackup.CheckResult
	BytesRestored     int64
	FilesRestored     int64
	// NotRun says why the part was not rehearsed (a scheduled drill holds
	// no snapshot key); the steps it did run are kept.
	NotRun string
	// ScratchDir is the kept scratch directory, empty once removed.
	ScratchDir string
}

var (
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ErrInvalid is a request the engine refuses before doing anything.
var ErrInvalid = errors.New("invalid drill request")

// ErrNothing means the store holds nothing the part could rehearse.
var ErrNothing = errors.New("nothing to rehearse")

// runningMark is in a scratch directory while its part runs: Sweep removes
// only directories that have it (a kept one has lost it).
const runningMark = ".drill-running"

// pgPIDFile is the scratch PostgreSQL's pid file in its part's scratch.
const pgPIDFile = "postgres.pid"

// ScratchDir is where a part keeps its scratch data.
func ScratchDir(stateDir, drillID, layer, name string) string {
	return filepath.Join(stateDir, "drill", drillID, layer+"-"+name)
}

func validName(layer, name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %s part %q: not a name a scratch directory can have", ErrInvalid, layer, name)
	}
	return nil
}

// part is one running part: its result and scratch directory.
type part struct {
	e        *Engine
	res      *Result
	scratch  string
	progress Progress
}

// ValidID reports whether id can name a drill's scratch directory.
func ValidID(id string) bool { return idRE.MatchString(id) }

// check refuses a request before anything is read.
func check(drillID, layer, name string) error {
	if !idRE.MatchString(drillID) {
		return fmt.Errorf("%w: drill id %q: use letters, digits, '.', '_' and '-'", ErrInvalid, drillID)
	}
	return validName(layer, name)
}

func (e *Engine) start(drillID, layer, name string, progress Progress) (*part, error) {
	if err := check(drillID, layer, name); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string, string) {}
	}
	p := &part{e: e, progress: progress, scratch: ScratchDir(e.StateDir, drillID, layer, name),
		res: &Result{Layer: layer, Name: name, Node: e.Node, OK: true, Facts: map[string]string{}, Counts: map[string]int64{}}}
	// 0755: a scratch PostgreSQL runs as the database's user and must
	// reach its data directory below. The part's own directory is made
	// with Mkdir: of two requests for the same part, one gets it.
	// Another part of the same drill that finishes removes the drill's
	// directory when it is empty, maybe between the two calls: then again.
	for try := 0; ; try++ {
		if err := durable.MkdirAll(filepath.Dir(p.scratch), 0o755); err != nil {
			return nil, fmt.Errorf("make scratch directory: %w", err)
		}
		err := os.Mkdir(p.scratch, 0o755)
		if errors.Is(err, os.ErrNotExist) && try < 10 {
			continue
		}
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s exists: drill %s already ran a %s part for %s on %s", ErrInvalid, p.scratch, drillID, layer, name, e.Node)
		} else if err != nil {
			return nil, fmt.Errorf("make scratch directory: %w", err)
		}
		break
	}
	for d := p.scratch; d != filepath.Clean(e.StateDir) && d != filepath.Dir(d); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	if err := durable.WriteFile(filepath.Join(p.scratch, runningMark), nil, 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// step runs fn as the named step and records it; a failure is a problem
// of the part (its error names the object). It reports whether fn
// succeeded.
func (p *part) step(name string, restore bool, fn func() (string, error)) bool {
	p.progress(name, "")
	st := Step{Name: name, Start: time.Now().UTC(), Restore: restore}
	detail, err := fn()
	st.End = time.Now().UTC()
	st.Detail = detail
	st.OK = err == nil
	if err != nil {
		st.Error = err.Error()
		p.problem(err.Error())
	}
	p.res.Steps = append(p.res.Steps, st)
	return st.OK
}

func (p *part) problem(msg string) {
	p.res.OK = false
	p.res.Problems = append(p.res.Problems, msg)
}

// finish removes the scratch directory (keep: leaves it, named in the
// result) as the part's cleanup step. Every process the part started has
// stopped before it is called.
func (p *part) finish(keep bool) *Result {
	if keep {
		p.step("cleanup", false, func() (string, error) {
			if err := os.Remove(filepath.Join(p.scratch, runningMark)); err != nil {
				return "", fmt.Errorf("keep scratch %s: %w", p.scratch, err)
			}
			p.res.ScratchDir = p.scratch
			return "kept " + p.scratch, nil
		})
		return p.res
	}
	p.step("cleanup", false, func() (string, error) {
		if err := removeScratch(p.scratch); err != nil {
			return "", err
		}
		return "removed " + p.scratch, nil
	})
	return p.res
}

// removeScratch removes a part's scratch directory, and the drill's
// directory when it was the last part in it.
func removeScratch(dir string) error {
	// restic restores files read-only; RemoveAll needs their directories
	// writable.
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove scratch %s: %w", dir, err)
	}
	_ = os.Remove(filepath.Dir(dir)) // fails while other parts' dirs are there
	return nil
}

// ErrNoKey is a part that must decrypt and was given no snapshot key.
var ErrNoKey = errors.New("this drill needs the snapshot key: run it through kubectl dr drill, which brings it")

// identity is the snapshot key, nil when not needed (what is to be read is
// not encrypted).
func (e *Engine) identity(needed bool, what string) (age.Identity, error) {
	if !needed {
		return nil, nil
	}
	if e.Identity == nil {
		return nil, fmt.Errorf("%w (%s is encrypted)", ErrNoKey, what)
	}
	return e.Identity, nil
}

// keyless is the NotRun of a part whose data is encrypted in a drill that
// holds no key (Unattended).
func keyless(what, checked string) string {
	return what + " is encrypted and this node holds only the public recipient (the private key never lives on nodes): " +
		checked + "; nothing was decrypted or restored. Rehearse it with kubectl dr drill, which brings the snapshot key"
}

// Sweep removes the scratch directories that parts cut short by the
// agent's death left under stateDir (those still marked running), stopping
// the scratch PostgreSQL a part's pid file names first. Kept scratch
// directories stay. It returns the directories removed.
func Sweep(stateDir string) ([]string, error) {
	root := filepath.Join(stateDir, "drill")
	drills, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range drills {
		if !d.IsDir() {
			continue
		}
		parts, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, pt := range parts {
			dir := filepath.Join(root, d.Name(), pt.Name())
			if _, err := os.Stat(filepath.Join(dir, runningMark)); err != nil {
				continue
			}
			if _, err := pgbackup.StopScratch(filepath.Join(dir, pgPIDFile)); err != nil {
				// Never remove a data directory a postgres may still use.
				errs = append(errs, fmt.Errorf("drill scratch %s: %w", dir, err))
				continue
			}
			if err := removeScratch(dir); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, dir)
		}
	}
	return removed, errors.Join(errs...)
}
