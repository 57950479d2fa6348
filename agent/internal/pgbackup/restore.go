package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/walstage"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// RestoreRequest restores a source into a new data directory.
type RestoreRequest struct {
	Source string
	// Target is where recovery stops (the zero Target: the end of the
	// archive, on the newest timeline).
	Target pgtarget.Target
	// AllowMissingWAL restores even when WAL the target needs is not in
	// the store (a drill reports the gap itself and replays up to it).
	AllowMissingWAL bool
	TargetDir       string
	// Identity decrypts encrypted WAL while it is staged: held in memory
	// for the request, never written.
	Identity age.Identity
	// StageWorkers is how many WAL files are staged at once (0: the
	// default).
	StageWorkers int
	// StageProgress, if set, is told as WAL files are staged.
	StageProgress func(done, total int, bytes int64)
	// Replay: the caller replays the restore at once (verify, drill), while
	// the WAL is still being staged; it ends Restored.Stage. Otherwise the
	// stage is complete when Restore returns, and the directory can be
	// started later without the store.
	Replay bool
	// TurnOf is the data directory a real restore writes, when TargetDir
	// stands in for it (a drill's scratch): the base backup's restore
	// takes turns with the node's file restores as one into it would.
	TurnOf string
	// Records is what the chosen base backup's record must pass: signed
	// by its node (or unsigned, when the request allowed it). The zero
	// policy trusts nothing.
	Records signature.Policy
}

// Restored is a data directory ready to start.
type Restored struct {
	Dir          string
	Base         *basebackup.BaseBackup
	Plan         *pgtarget.Plan
	StartCommand string
	// Stage is the WAL staged beside Dir (walstage.Dir), still fetching
	// when the request was for a replay.
	Stage *walstage.Stage
}

// PlanRestore chooses the base backup and the WAL that reach target from
// what the store holds of source.
func PlanRestore(ctx context.Context, store objstore.Store, source string, target pgtarget.Target, identity age.Identity) (*pgtarget.Plan, error) {
	list, _, err := basebackup.List(ctx, store, source)
	if err != nil {
		return nil, fmt.Errorf("list base backups of %s: %w", source, err)
	}
	a, err := pgtarget.LoadArchive(ctx, store, source, identity)
	if err != nil {
		return nil, err
	}
	plan, err := pgtarget.Choose(list, a, target)
	if err != nil {
		return nil, fmt.Errorf("WAL source %s: %w", source, err)
	}
	return plan, nil
}

// VerifyBase checks the plan's base backup against its record's
// signature under p and puts the verified record in its place: the
// snapshot id, label and LSNs a restore uses are the ones its node signed.
func VerifyBase(ctx context.Context, store objstore.Store, p signature.Policy, plan *pgtarget.Plan) error {
	if plan.Base == nil {
		return nil
	}
	v, err := basebackup.Verified(ctx, store, p, plan.Base)
	if err != nil {
		return fmt.Errorf("WAL source %s: %w", plan.Base.Source, err)
	}
	plan.Base = v
	return nil
}

// Restore lays down the base backup that reaches the target (PlanRestore),
// its backup_label, and the recovery settings: restore_command through the
// staged beside it, the target, recovery.signal. It refuses before writing anything
// when WAL the target needs is missing. The directory must not exist or be
// empty: nothing is overwritten.
func Restore(ctx context.Context, req RestoreRequest, eng *files.Engine, store objstore.Store, progress func(phase string, st restic.RestoreStatus)) (_ *Restored, err error) {
	if !filepath.IsAbs(req.TargetDir) {
		return nil, fmt.Errorf("--target-dir %q: must be an absolute path on the node", req.TargetDir)
	}
	if entries, err := os.ReadDir(req.TargetDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("--target-dir %s is not empty: restore into a new directory (nothing is overwritten)", req.TargetDir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	plan, err := PlanRestore(ctx, store, req.Source, req.Target, req.Identity)
	if err != nil {
		return nil, err
	}
	if err := VerifyBase(ctx, store, req.Records, plan); err != nil {
		return nil, err
	}
	if err := plan.Err(); err != nil && !req.AllowMissingWAL {
		return nil, fmt.Errorf("WAL source %s: %w", req.Source, err)
	}
	base := plan.Base
	// The database's user must be able to reach the directory: parents
	// made here are 0755 (restic would make them 0700).
	if err := durable.MkdirAll(filepath.Dir(req.TargetDir), 0o755); err != nil {
		return nil, err
	}
	// The WAL is staged while the base backup is restored: nothing of the
	// store's credentials or key is left for restore_command.
	stage, err := startStage(ctx, req, store, base)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = stage.Remove()
		}
	}()
	progress("restore", restic.RestoreStatus{})
	if err := eng.RestoreDir(ctx, base.SnapshotID, base.PGData, req.TargetDir, req.TurnOf, func(st restic.RestoreStatus) { progress("restore", st) }); err != nil {
		return nil, fmt.Errorf("restore base backup %s: %w", base.ID, err)
	}
	dir := req.TargetDir
	// restic restores the files' owners; the directory itself must belong
	// to the database's user too, mode 0700, or PostgreSQL refuses it.
	st, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("restored base backup %s has no PG_VERSION: %w", base.ID, err)
	}
	uid, gid := owner(st)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	write := func(name, body string, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		if err := durable.WriteFile(p, []byte(body), mode); err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}
	_ = os.Remove(filepath.Join(dir, "postmaster.pid"))
	if err := write("backup_label", base.Label, 0o600); err != nil {
		return nil, err
	}
	if base.TablespaceMap != "" {
		if err := write("tablespace_map", base.TablespaceMap, 0o600); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"pg_wal", "pg_wal/archive_status"} {
		p := filepath.Join(dir, d)
		if err := durable.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Lchown(stage.Dir, uid, gid); err != nil {
		return nil, fmt.Errorf("give the WAL stage %s to the database's user: %w", stage.Dir, err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "\n# kubectl dr pg restore of %s from base backup %s, %s\n", req.Source, base.ID, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&conf, "# restore_command copies the WAL staged in %s.\n", stage.Dir)
	fmt.Fprintf(&conf, "restore_command = %s\n", confQuote(stageRestoreCommand(stage.Dir)))
	fmt.Fprintf(&conf, "# recovery to %s: %s\n", plan.Target.Describe(), base.ID)
	for _, st := range plan.Settings() {
		fmt.Fprintf(&conf, "%s = '%s'\n", st.Name, strings.ReplaceAll(st.Value, "'", "''"))
	}
	conf.WriteString("# A restored copy must not archive into the source's spool: turn archiving\n# back on, to a new WAL source, when it becomes the database.\narchive_mode = 'off'\n")
	auto := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(conf.String()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Lchown(auto, uid, gid); err != nil {
		return nil, err
	}
	if err := write("recovery.signal", "", 0o600); err != nil {
		return nil, err
	}
	out := &Restored{Dir: dir, Base: base, Plan: plan, Stage: stage,
		StartCommand: fmt.Sprintf("pg_ctl -D %s start   # as the data directory's owner (uid %d), PostgreSQL %s", dir, uid, base.PGVersion)}
	if req.Replay {
		return out, nil
	}
	progress("stage", restic.RestoreStatus{})
	if err := stage.Wait(); err != nil {
		return nil, fmt.Errorf("stage the WAL of %s in %s: %w", req.Source, stage.Dir, err)
	}
	out.StartCommand += fmt.Sprintf("; restore_command copies the WAL staged in %s (%d files; no store needed): remove it once the database has promoted", stage.Dir, stage.Files)
	return out, nil
}
