package restic

import (
	"context"
	"encoding/json"
	"time"
)

// Node is one entry of a snapshot's tree (restic ls).
type Node struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"` // file, dir, symlink, ...
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

// Ls lists the snapshot's entries under paths (all when empty).
func (r *Repo) Ls(ctx context.Context, snapshot string, paths []string, each func(Node)) error {
	args := append([]string{"--", snapshot}, paths...)
	return r.run(ctx, "ls", args, func(line []byte) {
		var m struct {
			Type string `json:"message_type"`
			Node
		}
		if json.Unmarshal(line, &m) == nil && m.Type == "node" {
			each(m.Node)
		}
	})
}

// RestoreOptions restores a snapshot's paths under Target (the snapshot's
// absolute paths are recreated below it; "/" restores in place).
type RestoreOptions struct {
	Snapshot string
	Target   string
	Includes []string
	DryRun   bool
	// Verify has restic read every restored file back and compare it
	// with the snapshot's content (restore --verify, restic 0.17+).
	Verify bool
}

// RestoreAction is what restic did, or in a dry run would do, with an item:
// "restored" (created), "updated" (replaced), "unchanged", "deleted".
type RestoreAction struct {
	Action string `json:"action"`
	Item   string `json:"item"`
	Size   int64  `json:"size"`
}

// RestoreStatus is restic's restore progress.
type RestoreStatus struct {
	PercentDone   float64 `json:"percent_done"`
	TotalFiles    int64   `json:"total_files"`
	FilesRestored int64   `json:"files_restored"`
	TotalBytes    int64   `json:"total_bytes"`
	BytesRestored int64   `json:"bytes_restored"`
}

// RestoreSummary is restic's closing line.
type RestoreSummary struct {
	TotalFiles    int64 `json:"total_files"`
	FilesRestored int64 `json:"files_restored"`
	FilesSkipped  int64 `json:"files_skipped"`
	TotalBytes    int64 `json:"total_bytes"`
	BytesRestored int64 `json:"bytes_restored"`
	BytesSkipped  int64 `json:"bytes_skipped"`
}

// Restore runs restic restore. In a dry run every item's action goes to
// onAction; otherwise progress gets the status lines. Existing files are
// overwritten where their content differs; files the snapshot does not
// hold are left alone (no --delete).
func (r *Repo) Restore(ctx context.Context, o RestoreOptions, onAction func(RestoreAction), progress func(RestoreStatus)) (*RestoreSummary, error) {
	args := []string{"--target", o.Target, "--overwrite", "if-changed"}
	for _, in := range o.Includes {
		args = append(args, "--include", in)
	}
	if o.DryRun {
		args = append(args, "--dry-run", "--verbose=2")
	}
	if o.Verify {
		args = append(args, "--verify")
	}
	args = append(args, "--", o.Snapshot)
	var sum RestoreSummary
	err := r.run(ctx, "restore", args, func(line []byte) {
		var m struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) != nil {
			return
		}
		switch m.Type {
		case "verbose_status":
			var a RestoreAction
			if json.Unmarshal(line, &a) == nil && onAction != nil {
				onAction(a)
			}
		case "status":
			var st RestoreStatus
			if json.Unmarshal(line, &st) == nil && progress != nil {
				progress(st)
			}
		case "summary":
			_ = json.Unmarshal(line, &sum)
		}
	})
	if err != nil {
		return nil, err
	}
	return &sum, nil
}
