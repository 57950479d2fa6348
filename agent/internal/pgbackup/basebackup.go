package pgbackup

import (
	"context"
	"errors"
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
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Source is a database: its WAL source name, how to reach it and where
// its data directory is on this node.
type Source struct {
	Name       string
	Connection string
	PGData     string
	// Refusal, if set, says why this node's shipper of the source refused
	// a WAL file ("" if it did not).
	Refusal func(name string) string
	// WALTimeout bounds the wait for the backup's WAL to be in the store
	// (default 5 minutes).
	WALTimeout time.Duration
	// Sign signs the base backup's record (the node's certificate; nil:
	// unsigned, an agent not yet enrolled).
	Sign *signature.Signer
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
	// The database's identity and segment size, from the database: the
	// WAL the backup needs is checked against them.
	var sysidText string
	var segSize int64
	if err := conn.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&sysidText); err != nil {
		return nil, fmt.Errorf("WAL source %s: read the database system identifier: %w", src.Name, err)
	}
	if err := conn.QueryRow(ctx, "SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&segSize); err != nil {
		return nil, fmt.Errorf("WAL source %s: read wal_segment_size: %w", src.Name, err)
	}
	sysid, _ := strconv.ParseUint(sysidText, 10, 64)
	if sys, err := walobj.ReadSystem(ctx, store, src.Name); err == nil && sys.ID() != sysid {
		return nil, fmt.Errorf("WAL source %s archives database system %s (%s), but %s reaches database system %s: fix the source's connection and pgdata, or give this database a source of its own",
			src.Name, sys.SystemID, walobj.SystemKey(src.Name), src.Connection, sysidText)
	} else if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("WAL source %s: read %s: %w", src.Name, walobj.SystemKey(src.Name), err)
	}
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
	if len(sum.Warnings) > 0 {
		// restic's exit 3: a snapshot without these files restores a data
		// directory PostgreSQL cannot start from.
		return nil, fmt.Errorf("base backup %s: restic could not read %d file(s) of %s, so the backup is not recorded: %s; fix what keeps them from being read (permissions, a file system error) and take it again",
			b.ID, len(sum.Warnings), b.PGData, strings.Join(sum.Warnings, "; "))
	}
	b.SnapshotID, b.Bytes = sum.SnapshotID, sum.TotalBytesProcessed
	progress("stop", restic.BackupStatus{})
	var spc *string
	if err := conn.QueryRow(ctx, stop).Scan(&b.StopLSN, &b.Label, &spc); err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	stopped = true
	// Which transactions had ended by now: a restore to an xid picks a
	// base backup with this (pgtarget).
	if err := conn.QueryRow(ctx, "SELECT txid_current_snapshot()::text").Scan(&b.StopSnapshot); err != nil {
		return nil, fmt.Errorf("read the transaction snapshot after pg_backup_stop: %w", err)
	}
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
	// usable once every segment from its start to its end is in the store
	// and verified. A later segment arriving first proves nothing: an
	// earlier one may still be retrying.
	progress("wal", restic.BackupStatus{})
	first, err := startSegment(b)
	if err != nil {
		return nil, err
	}
	if walobj.Timeline(first) != walobj.Timeline(b.StopSegment) {
		return nil, fmt.Errorf("base backup %s: the timeline changed while it ran (%s to %s); take it again", b.ID, first, b.StopSegment)
	}
	timeout := src.WALTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	wr := walRange{source: src.Name, sysid: sysid, segSize: segSize, first: first, last: b.StopSegment, refusal: src.Refusal}
	if err := waitForWAL(ctx, store, wr, timeout); err != nil {
		return nil, fmt.Errorf("base backup %s is not recorded: %w", b.ID, err)
	}
	if err := basebackup.Write(ctx, store, b, src.Sign); err != nil {
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
