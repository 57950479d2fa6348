package pgbackup

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/walstage"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

var startFileRE = regexp.MustCompile(`START WAL LOCATION: [0-9A-F]+/[0-9A-F]+ \(file ([0-9A-F]{24})\)`)

// FirstSegment is the WAL segment a restore from b replays first.
func FirstSegment(b *basebackup.BaseBackup, segSize int64) (string, error) {
	if m := startFileRE.FindStringSubmatch(b.Label); m != nil {
		return m[1], nil
	}
	return walobj.SegmentOfLSN(b.Timeline, b.StartLSN, segSize)
}

// startStage starts staging the WAL a restore from base replays, beside
// target; reserve is what the restore writes besides on that file system.
func startStage(ctx context.Context, req RestoreRequest, store objstore.Store, base *basebackup.BaseBackup) (*walstage.Stage, error) {
	var segSize int64
	if sys, err := walobj.ReadSystem(ctx, store, req.Source); err == nil {
		segSize = sys.SegmentSize
	} else if !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("WAL source %s: %w", req.Source, err)
	}
	first, err := FirstSegment(base, segSize)
	if err != nil {
		return nil, fmt.Errorf("base backup %s: %w", base.ID, err)
	}
	return walstage.Start(ctx, walstage.Options{
		Source: req.Source, Store: store, Identity: req.Identity, Dir: walstage.Dir(req.TargetDir),
		First: first, SegmentSize: segSize, Workers: req.StageWorkers, Reserve: base.Bytes,
		Progress: req.StageProgress, NoSync: req.Replay,
	})
}

// stageRestoreCommand is the restore_command of a restore whose WAL is
// staged in stage: a copy from it, with no binary and no credentials. A
// file the stage's plan holds but the stage does not (someone removed it,
// or the whole stage) aborts recovery (exit 255) instead of ending it
// early as at the archive's end (exit 1).
func stageRestoreCommand(stage string) string {
	s := shellQuote(stage)
	return fmt.Sprintf(`f=%%f; s=%s; if [ -f "$s/$f" ]; then cp "$s/$f" "%%p" || exit 255; elif [ ! -f "$s/.plan" ] || grep -qxF "$f" "$s/.plan"; then echo "$f is missing from the WAL stage $s" >&2; exit 255; else exit 1; fi`,
		strings.ReplaceAll(s, "%", "%%"))
}

// ReplayWaitCommand is the restore_command of a scratch instance
// replaying while the stage is still fetching, in sh alone (no process
// but sh and cp per file in the common case): it waits for a file of the
// plan not staged yet while staging runs (its agent alive, no failure),
// then does what stageRestoreCommand does.
func ReplayWaitCommand(stage string) string {
	s := strings.ReplaceAll(shellQuote(stage), "%", "%%")
	return fmt.Sprintf(`f=%%f; s=%s; while [ ! -f "$s/$f" ] && [ -f "$s/.staging" ] && [ ! -f "$s/.failed" ] && grep -qxF "$f" "$s/.plan" && [ -d "/proc/$(cat "$s/.staging" 2>/dev/null)" ]; do sleep 0.01; done; `, s) +
		stageRestoreCommand(stage)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// confQuote quotes s as a postgresql.conf string.
func confQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
