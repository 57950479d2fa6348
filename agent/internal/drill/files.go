package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
)

// DefaultReadDataSubset is how much of the repository's data a files part
// reads back (restic check --read-data-subset).
const DefaultReadDataSubset = "5%"

// FilesPart names the restic snapshot to rehearse.
type FilesPart struct {
	// SnapshotID, else the newest of Node in BackupSet, else Node's newest.
	SnapshotID, BackupSet, Node string
	// ReadDataSubset for restic check ("" = DefaultReadDataSubset, "0"
	// skips the check).
	ReadDataSubset string
}

// ErrFilesOff means this node's agent has no file backups to rehearse.
var ErrFilesOff = errors.New("file backups are off on this node")

// RunFiles rehearses a node's file restore: restic restore --verify into
// scratch, then restic check over a subset of the packs.
func (e *Engine) RunFiles(ctx context.Context, drillID string, req FilesPart, keep bool, progress Progress) (*Result, error) {
	if err := check(drillID, LayerFiles, e.Node); err != nil {
		return nil, err
	}
	if req.Node != "" {
		if err := validName(LayerFiles, req.Node); err != nil {
			return nil, err
		}
	}
	if e.Files == nil {
		return nil, fmt.Errorf("%w: %s", ErrFilesOff, e.FilesOff)
	}
	subset := req.ReadDataSubset
	if subset == "" {
		subset = DefaultReadDataSubset
	}
	if subset != "0" && strings.ContainsAny(subset, " \t\n") {
		return nil, fmt.Errorf("%w: read-data-subset %q: want a percentage (5%%), n/m or a size", ErrInvalid, subset)
	}
	snap, err := e.Files.FindSnapshot(ctx, req.SnapshotID, req.BackupSet, req.Node)
	if err != nil {
		return nil, err
	}
	owner := req.Node
	if owner == "" {
		owner = e.Node
	}
	p, err := e.start(drillID, LayerFiles, owner, progress)
	if err != nil {
		return nil, err
	}
	r := p.res
	r.RecoveryPoint = snap.Time
	r.Facts["snapshot"], r.Facts["shortID"] = snap.ID, snap.ShortID
	r.Facts["time"] = snap.Time.UTC().Format(time.RFC3339)
	r.Facts["paths"], r.Facts["tags"] = strings.Join(snap.Paths, ","), strings.Join(snap.Tags, ",")
	r.Facts["host"] = snap.Hostname
	if v, err := restic.Version(ctx, e.Files.Repo.Binary); err == nil {
		r.Facts["resticVersion"] = v
	}
	target := filepath.Join(p.scratch, "files")
	p.step("restore", true, func() (string, error) {
		if err := os.Mkdir(target, 0o700); err != nil {
			return "", err
		}
		var last restic.RestoreStatus
		// What a real recovery runs: restic restore, no read-back (the
		// read-back is the drill's own check, next, outside the RTO).
		sum, err := e.Files.RestoreSnapshot(ctx, snap.ID, target, false, func(st restic.RestoreStatus) {
			if st.FilesRestored != last.FilesRestored {
				p.progress("restore", fmt.Sprintf("%d of %d files, %d of %d bytes", st.FilesRestored, st.TotalFiles, st.BytesRestored, st.TotalBytes))
			}
			last = st
		})
		if err != nil {
			return "", fmt.Errorf("restore snapshot %s of %s: %w%s", snap.ShortID, owner, err, restic.Problems(err))
		}
		r.FilesRestored, r.BytesRestored = sum.FilesRestored, sum.BytesRestored
		r.Counts["files"] = sum.TotalFiles
		if sum.FilesRestored != sum.TotalFiles {
			return "", fmt.Errorf("restore snapshot %s of %s: %d of its %d files restored", snap.ShortID, owner, sum.FilesRestored, sum.TotalFiles)
		}
		return fmt.Sprintf("%d files, %d bytes restored", sum.FilesRestored, sum.BytesRestored), nil
	})
	if r.OK {
		p.step("verify", false, func() (string, error) {
			// restic restore --verify over the restored tree: unchanged files
			// are not written again, every file is read back against the
			// snapshot.
			if _, err := e.Files.RestoreSnapshot(ctx, snap.ID, target, true, nil); err != nil {
				return "", fmt.Errorf("verify the restore of snapshot %s of %s (restic read back every file): %w%s", snap.ShortID, owner, err, restic.Problems(err))
			}
			return "restic read every restored file back against the snapshot: each matches", nil
		})
	}
	// The repository's check runs whatever the restore found: after a
	// failed restore it tells which packs are damaged or missing.
	if subset != "0" {
		p.step("read-data", false, func() (string, error) {
			res, err := e.Files.Check(ctx, subset)
			if err != nil {
				return "", fmt.Errorf("restic check --read-data-subset %s: %w", subset, err)
			}
			if res.Errors > 0 || len(res.Messages) > 0 {
				return "", fmt.Errorf("restic check --read-data-subset %s found %d errors: %s", subset, res.Errors, strings.Join(res.Messages, "; "))
			}
			return "restic check --read-data-subset " + subset + ": no errors", nil
		})
	}
	return p.finish(keep), nil
}
