package restic

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// BackupOptions says what to back up and how to label it.
type BackupOptions struct {
	Paths    []string
	Excludes []string
	Tags     []string
	// Host names the snapshot's node (restic picks the parent snapshot of
	// the same host and paths, so incremental runs stay incremental).
	Host string
}

// BackupStatus is one of restic's progress lines.
type BackupStatus struct {
	PercentDone      float64 `json:"percent_done"`
	TotalFiles       int64   `json:"total_files"`
	FilesDone        int64   `json:"files_done"`
	TotalBytes       int64   `json:"total_bytes"`
	BytesDone        int64   `json:"bytes_done"`
	SecondsRemaining int64   `json:"seconds_remaining"`
}

// BackupSummary is restic's closing line.
type BackupSummary struct {
	SnapshotID          string    `json:"snapshot_id"`
	FilesNew            int64     `json:"files_new"`
	FilesChanged        int64     `json:"files_changed"`
	FilesUnmodified     int64     `json:"files_unmodified"`
	DataAdded           int64     `json:"data_added"`
	TotalFilesProcessed int64     `json:"total_files_processed"`
	TotalBytesProcessed int64     `json:"total_bytes_processed"`
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	// Warnings are files restic could not read; the snapshot exists
	// without them.
	Warnings []string `json:"-"`
}

// Backup runs restic backup, calling progress for each status line.
func (r *Repo) Backup(ctx context.Context, o BackupOptions, progress func(BackupStatus)) (*BackupSummary, error) {
	if len(o.Paths) == 0 {
		return nil, errors.New("restic backup: no paths")
	}
	args := []string{"--host", o.Host}
	for _, t := range o.Tags {
		args = append(args, "--tag", t)
	}
	for _, e := range o.Excludes {
		args = append(args, "--exclude", e)
	}
	args = append(args, "--")
	args = append(args, o.Paths...)
	var sum *BackupSummary
	var warnings []string
	err := r.run(ctx, "backup", args, func(line []byte) {
		var m struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) != nil {
			return
		}
		switch m.Type {
		case "status":
			var st BackupStatus
			if json.Unmarshal(line, &st) == nil && progress != nil {
				progress(st)
			}
		case "summary":
			var s BackupSummary
			if json.Unmarshal(line, &s) == nil {
				sum = &s
			}
		}
	})
	var re *Error
	if errors.As(err, &re) && re.Code == exitIncomplete && sum != nil {
		// A snapshot was written; some files could not be read. restic
		// names them on stderr.
		err = nil
		for _, e := range re.Errors {
			if len(warnings) < 20 {
				warnings = append(warnings, e)
			}
		}
		if len(warnings) == 0 {
			warnings = append(warnings, "some files could not be read (restic's exit 3)")
		}
	}
	if err != nil {
		return nil, err
	}
	if sum == nil || sum.SnapshotID == "" {
		return nil, errors.New("restic backup: finished without a snapshot id")
	}
	sum.Warnings = warnings
	return sum, nil
}

// Snapshot is one entry of restic snapshots --json.
type Snapshot struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags"`
	Summary  *struct {
		TotalFilesProcessed int64 `json:"total_files_processed"`
		TotalBytesProcessed int64 `json:"total_bytes_processed"`
	} `json:"summary"`
}

// Snapshots lists snapshots carrying every tag given (restic's --tag a,b).
func (r *Repo) Snapshots(ctx context.Context, tags ...string) ([]Snapshot, error) {
	var args []string
	if len(tags) > 0 {
		args = append(args, "--tag", strings.Join(tags, ","))
	}
	var out []byte
	err := r.run(ctx, "snapshots", args, func(line []byte) { out = append(out, line...) })
	if err != nil {
		return nil, err
	}
	var snaps []Snapshot
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, err
	}
	return snaps, nil
}
