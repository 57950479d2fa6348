package pgbackup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Source is a database: its WAL source name, how to reach it and where
// its data directory is on this node.
type Source struct {
	Name       string
	Connection string
	PGData     string
}

// excluded are what pg_basebackup leaves out of a data directory too:
// WAL (it comes from the archive), runtime state and temporary files.
var excluded = []string{
	"pg_wal/*", "pg_replslot/*", "pg_dynshmem/*", "pg_notify/*", "pg_serial/*",
	"pg_snapshots/*", "pg_stat_tmp/*", "pg_subtrans/*", "postmaster.pid",
	"postmaster.opts", "backup_label", "tablespace_map", "backup_label.old",
}

// TakeBaseBackup runs pg_backup_start, a restic snapshot of the data
// directory, pg_backup_stop (waiting for its WAL to be archived), waits for
// that WAL to be in the store, and records the backup.
func TakeBaseBackup(ctx context.Context, src Source, node string, eng *files.Engine, store objstore.Store, progress func(phase string, st restic.BackupStatus)) (*basebackup.BaseBackup, error) {
	if src.Connection == "" || src.PGData == "" {
		return nil, fmt.Errorf("WAL source %s: base backups need connection and pgdata in the agent config", src.Name)
	}
	version, err := os.ReadFile(filepath.Join(src.PGData, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("WAL source %s: %s is not a PostgreSQL data directory on this node: %w", src.Name, src.PGData, err)
	}
	conn, err := pgx.Connect(ctx, src.Connection)
	if err != nil {
		return nil, fmt.Errorf("WAL source %s: connect: %w", src.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var sv string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&sv); err != nil {
		return nil, fmt.Errorf("WAL source %s: %w", src.Name, err)
	}
	serverVersion, _ := strconv.Atoi(sv)
	b := &basebackup.BaseBackup{
		ID:        "base-" + time.Now().UTC().Format("20060102T150405Z"),
		Source:    src.Name,
		Node:      node,
		PGData:    filepath.Clean(src.PGData),
		PGVersion: strings.TrimSpace(string(version)),
		StartTime: time.Now().UTC(),
	}
	progress("start", restic.BackupStatus{})
	start, stop := "SELECT pg_backup_start($1, true)", "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(true)"
	if serverVersion > 0 && serverVersion < 150000 {
		start = "SELECT pg_start_backup($1, true, false)"
		stop = "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
	}
	if err := conn.QueryRow(ctx, start, "kubectl-dr "+b.ID).Scan(&b.StartLSN); err != nil {
		return nil, fmt.Errorf("pg_backup_start: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			// Leave the server as it was.
			_, _ = conn.Exec(context.WithoutCancel(ctx), strings.Replace(stop, "lsn, labelfile, spcmapfile", "1", 1))
		}
	}()
	sum, err := eng.BackupDir(ctx, b.PGData, prefixed(b.PGData, excluded), []string{"pg=" + src.Name, "basebackup=" + b.ID}, func(st restic.BackupStatus) { progress("copy", st) })
	if err != nil {
		return nil, err
	}
	b.SnapshotID, b.Bytes = sum.SnapshotID, sum.TotalBytesProcessed
	progress("stop", restic.BackupStatus{})
	var spc *string
	if err := conn.QueryRow(ctx, stop).Scan(&b.StopLSN, &b.Label, &spc); err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	stopped = true
	if spc != nil {
		b.TablespaceMap = *spc
	}
	b.StopTime = time.Now().UTC()
	if err := conn.QueryRow(ctx, "SELECT timeline_id FROM pg_control_checkpoint()").Scan(&b.Timeline); err != nil {
		return nil, err
	}
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name($1::pg_lsn)", b.StopLSN).Scan(&b.StopSegment); err != nil {
		return nil, err
	}
	// pg_backup_stop waited for the WAL to reach the spool; the backup is
	// usable once it is in the store.
	progress("wal", restic.BackupStatus{})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		a, err := walobj.ListArchived(ctx, store, src.Name)
		if err == nil && a.Newest >= b.StopSegment && walobj.Timeline(a.Newest) == walobj.Timeline(b.StopSegment) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("base backup %s: WAL file %s (its end) is not in the store after 5 minutes; is the source shipping? (kubectl dr wal status %s)", b.ID, b.StopSegment, src.Name)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := basebackup.Write(ctx, store, b); err != nil {
		return nil, fmt.Errorf("record base backup %s: %w", b.ID, err)
	}
	return b, nil
}

func prefixed(dir string, patterns []string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = filepath.Join(dir, p)
	}
	return out
}

// Position is where a database's WAL stands.
type Position struct {
	LSN      string
	Timeline uint32
	Time     time.Time
}

// CurrentPosition asks the database for its current WAL position.
func CurrentPosition(ctx context.Context, connection string) (Position, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connection)
	if err != nil {
		return Position{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var p Position
	err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text, (SELECT timeline_id FROM pg_control_checkpoint()), clock_timestamp()").Scan(&p.LSN, &p.Timeline, &p.Time)
	return p, err
}
