package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// PostgresPart names the WAL source and the point to recover to.
type PostgresPart struct {
	Source string
	// Target is the recovery target; zero: everything archived.
	Target time.Time
	Checks []pgbackup.Check
}

// RunPostgres rehearses a database's point-in-time restore: WAL continuity
// in the store, the base backup restored into scratch, replayed in a
// scratch PostgreSQL and the checks run in it.
func (e *Engine) RunPostgres(ctx context.Context, drillID string, req PostgresPart, keep bool, progress Progress) (*Result, error) {
	if e.Files == nil {
		return nil, fmt.Errorf("%w: %s (base backups are restic snapshots)", ErrFilesOff, e.FilesOff)
	}
	if err := check(drillID, LayerPostgres, req.Source); err != nil {
		return nil, err
	}
	target := pgtarget.Target{Kind: pgtarget.Time, Time: req.Target}
	plan, err := pgbackup.PlanRestore(ctx, e.Store, req.Source, target, e.Identity)
	if err != nil {
		return nil, err
	}
	base := plan.Base
	p, err := e.start(drillID, LayerPostgres, req.Source, progress)
	if err != nil {
		return nil, err
	}
	// The scratch PostgreSQL runs as the database's user, which must pass
	// through the state dir (often 0700) to its data directory: it gets
	// search permission for others (o+x: no listing, and every file in it
	// keeps its own mode).
	if st, err := os.Stat(e.StateDir); err == nil && st.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(e.StateDir, st.Mode().Perm()|0o001); err != nil {
			p.problem(fmt.Sprintf("let the database's user reach %s: %v", p.scratch, err))
			return p.finish(keep), nil
		}
	}
	r := p.res
	f := r.Facts
	f["source"], f["baseBackup"], f["baseBackupNode"], f["pgVersion"] = req.Source, base.ID, base.Node, base.PGVersion
	f["baseBackupStop"] = base.StopTime.UTC().Format(time.RFC3339)
	if req.Target.IsZero() {
		f["target"] = "latest"
	} else {
		f["target"] = req.Target.UTC().Format(time.RFC3339Nano)
	}
	p.step("wal-continuity", false, func() (string, error) {
		// The segment size is the database's, as its source recorded it.
		var segSize int64
		if sys, err := walobj.ReadSystem(ctx, e.Store, req.Source); err == nil {
			segSize = sys.SegmentSize
		} else if !errors.Is(err, objstore.ErrNotFound) {
			return "", fmt.Errorf("WAL source %s: %w", req.Source, err)
		}
		start, err := pgbackup.FirstSegment(base, segSize)
		if err != nil {
			return "", fmt.Errorf("base backup %s: %w", base.ID, err)
		}
		f["firstSegment"] = start
		objs, err := e.Store.List(ctx, "wal/"+req.Source+"/")
		if err != nil {
			return "", fmt.Errorf("list wal/%s/: %w", req.Source, err)
		}
		var names []string
		newestAt := map[string]time.Time{}
		for _, o := range objs {
			if name, ok := strings.CutSuffix(path.Base(o.Key), walobj.ObjectSuffix); ok {
				names = append(names, name)
				newestAt[name] = o.Modified
			}
		}
		newest, missing := walobj.Continuity(names, start, segSize)
		if newest != "" {
			f["newestSegment"] = newest
			f["newestSegmentStored"] = newestAt[newest].UTC().Format(time.RFC3339)
		}
		if missing != "" {
			return "", fmt.Errorf("WAL of %s: segment %s is missing from the store (%s): replay from base backup %s stops before it", req.Source, missing, walobj.Key(req.Source, missing), base.ID)
		}
		return fmt.Sprintf("every segment from %s to %s is in the store", start, newest), nil
	})
	if e.Unattended && e.Identity == nil && f["firstSegment"] != "" && r.OK {
		// A scheduled drill has no key: encrypted WAL cannot be replayed.
		if rc, err := e.Store.Get(ctx, walobj.Key(req.Source, f["firstSegment"])); err == nil {
			_, err := walobj.Decode(io.Discard, rc, nil)
			rc.Close()
			if errors.Is(err, walobj.ErrKey) {
				r.NotRun = keyless("the WAL of "+req.Source, "every segment from the base backup on is in the store")
				return p.finish(keep), nil
			}
		}
	}
	dir := filepath.Join(p.scratch, "data")
	var restored *pgbackup.Restored
	ok := p.step("restore", true, func() (string, error) {
		// The WAL is staged beside the scratch data directory while the
		// base backup is restored and while the scratch instance replays.
		id, err := e.walIdentity()
		if err != nil {
			return "", err
		}
		restored, err = pgbackup.Restore(ctx, pgbackup.RestoreRequest{Source: req.Source, Target: target, AllowMissingWAL: true, TargetDir: dir, Identity: id, Replay: true, TurnOf: base.PGData, Records: e.records()}, e.Files, e.Store,
			func(phase string, st restic.RestoreStatus) {
				if st.TotalBytes > 0 {
					p.progress("restore", fmt.Sprintf("%d of %d bytes", st.BytesRestored, st.TotalBytes))
				}
			})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("base backup %s (%d bytes, PostgreSQL %s) with recovery settings", base.ID, base.Bytes, base.PGVersion), nil
	})
	if ok {
		e.replay(ctx, p, restored, req, base)
	}
	return p.finish(keep), nil
}

// replay starts the scratch PostgreSQL, waits for it to recover and
// promote, counts rows and runs the checks; it has stopped when it returns.
func (e *Engine) replay(ctx context.Context, p *part, restored *pgbackup.Restored, req PostgresPart, base *basebackup.BaseBackup) {
	// Promoted (or failed): the staged WAL goes.
	defer restored.Stage.Remove()
	port, err := freePort()
	if err != nil {
		p.problem(fmt.Sprintf("pick a port for the scratch PostgreSQL: %v", err))
		return
	}
	p.progress("replay", "replaying WAL in a scratch PostgreSQL")
	replay := Step{Name: "replay", Start: time.Now().UTC(), Restore: true}
	v, err := pgbackup.VerifyWith(ctx, restored.Dir, port, pgbackup.VerifyOptions{
		PIDFile:  filepath.Join(p.scratch, pgPIDFile),
		Checks:   req.Checks,
		Promoted: func() { replay.End = time.Now().UTC(); p.progress("check", "") },
		Stage:    restored.Stage.Dir,
	})
	if serr := restored.Stage.Stop(); serr != nil && err != nil {
		err = fmt.Errorf("%w (staging the WAL: %v)", err, serr)
	}
	checkStart := replay.End
	if replay.End.IsZero() {
		replay.End = time.Now().UTC()
	}
	if err != nil {
		replay.Error = fmt.Sprintf("scratch PostgreSQL on the restore of %s did not recover: %v", req.Source, err)
		p.res.Steps = append(p.res.Steps, replay)
		p.problem(replay.Error)
		return
	}
	replay.OK = true
	r := p.res
	r.RecoveryPoint = v.RecoveredTo
	if v.RecoveredTo.IsZero() {
		// No transaction replayed: the copy is as of the base backup.
		r.RecoveryPoint = base.StopTime
		replay.Detail = "recovered and promoted; no transaction after the base backup"
	} else {
		replay.Detail = "recovered and promoted; last transaction replayed " + v.RecoveredTo.UTC().Format(time.RFC3339Nano)
	}
	r.Facts["recoveredTo"] = r.RecoveryPoint.UTC().Format(time.RFC3339Nano)
	r.Steps = append(r.Steps, replay)
	var rows int64
	for t, n := range v.RowCounts {
		r.Counts[t] = n
		rows += n
	}
	check := Step{Name: "check", Start: checkStart, End: time.Now().UTC(), OK: true}
	var failed []string
	for _, c := range v.Checks {
		r.Checks = append(r.Checks, c)
		if !c.OK {
			failed = append(failed, c.Name)
			p.problem(fmt.Sprintf("check %s on %s: %s", c.Name, req.Source, c.Error))
		}
	}
	check.Detail = fmt.Sprintf("%d tables, %d rows; %d of %d checks passed", len(v.RowCounts), rows, len(v.Checks)-len(failed), len(v.Checks))
	if len(failed) > 0 {
		check.OK = false
		check.Error = "failed: " + strings.Join(failed, ", ")
	}
	r.Steps = append(r.Steps, check)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// walIdentity is the snapshot key for the WAL the drill stages, nil
// without one (clear WAL needs none; encrypted WAL then fails naming the
// key).
func (e *Engine) walIdentity() (age.Identity, error) {
	return e.Identity, nil
}
