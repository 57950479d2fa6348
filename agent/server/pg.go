package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func (s *Server) walSource(name string) (agentconfig.WALSource, bool) {
	for _, src := range s.cfg.WAL.Sources {
		if src.Name == name {
			return src, true
		}
	}
	return agentconfig.WALSource{}, false
}

// pgSource is a source's database for a base backup, told of what this
// node's shipper of it refused.
func (s *Server) pgSource(src agentconfig.WALSource) pgbackup.Source {
	out := pgbackup.Source{Name: src.Name, Connection: src.Connection, PGData: src.PGData, Sign: s.recordSigner()}
	for _, sh := range s.shippers {
		if sh.Source.Name == src.Name {
			out.Refusal = sh.Refusal
		}
	}
	return out
}

// lockSource holds the source's lock, or says who has it.
func (s *Server) lockSource(name string) (unlock func(), err error) {
	m, _ := s.pgLocks.LoadOrStore(name, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	if !mu.TryLock() {
		return nil, status.Errorf(codes.Aborted, "a base backup or prune of %s is running on node %s; try again when it has finished", name, s.cfg.NodeName)
	}
	return mu.Unlock, nil
}

// BaseBackup takes a base backup of a source whose data directory is on
// this node.
func (s *Server) BaseBackup(req *agentv1.BaseBackupRequest, stream agentv1.AgentService_BaseBackupServer) error {
	src, ok := s.walSource(req.Source)
	if !ok {
		return failure(codes.NotFound, agentv1.ReasonNoWALSource, "node %s has no WAL source %q", s.cfg.NodeName, req.Source)
	}
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	unlock, err := s.lockSource(src.Name)
	if err != nil {
		return err
	}
	defer unlock()
	send := func(phase string, st restic.BackupStatus) {
		_ = stream.Send(&agentv1.BaseBackupResponse{Event: &agentv1.BaseBackupResponse_Progress{Progress: &agentv1.Progress{
			Phase: phase, BytesDone: st.BytesDone, BytesTotal: st.TotalBytes, FilesDone: st.FilesDone, FilesTotal: st.TotalFiles, Percent: 100 * st.PercentDone,
		}}})
	}
	b, err := pgbackup.TakeBaseBackup(stream.Context(), s.pgSource(src), s.cfg.NodeName, e, s.store, send)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "base backup of %s: %v", src.Name, err)
	}
	s.log.Info("base backup", "source", b.Source, "id", b.ID, "start", b.StartLSN, "stop", b.StopLSN)
	return stream.Send(&agentv1.BaseBackupResponse{Event: &agentv1.BaseBackupResponse_Result{Result: baseBackupProto(b)}})
}

// PruneBaseBackups applies the source's base backup retention now.
func (s *Server) PruneBaseBackups(ctx context.Context, req *agentv1.PruneBaseBackupsRequest) (*agentv1.PruneBaseBackupsResponse, error) {
	src, ok := s.walSource(req.Source)
	if !ok {
		return nil, failure(codes.NotFound, agentv1.ReasonNoWALSource, "node %s has no WAL source %q", s.cfg.NodeName, req.Source)
	}
	e, err := s.filesEngine()
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockSource(src.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	store, err := s.requestStore(req.StoreCredentials)
	if err != nil {
		return nil, err
	}
	if e, err = s.requestFiles(e, req.StoreCredentials, store); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := s.pruneBaseBackupsIn(ctx, store, src, e, req.DryRun)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "prune base backups of %s: %v", src.Name, err)
	}
	r := src.BaseBackupRetention
	out := &agentv1.PruneBaseBackupsResponse{
		FirstWal: res.FirstWAL, WalFilesRemoved: int64(res.WALFiles), WalBytesRemoved: res.WALBytes,
		SnapshotsForgotten: res.Snapshots, DryRun: req.DryRun, Deferred: res.Deferred,
		Retention: fmt.Sprintf("keepLast=%d keepHourly=%d keepDaily=%d keepWeekly=%d keepMonthly=%d", r.KeepLast, r.KeepHourly, r.KeepDaily, r.KeepWeekly, r.KeepMonthly),
	}
	for _, b := range res.Kept {
		out.Kept = append(out.Kept, baseBackupProto(b))
	}
	for _, b := range res.Removed {
		out.Removed = append(out.Removed, baseBackupProto(b))
	}
	return out, nil
}

// ListBaseBackups reads the base backup records from the store.
func (s *Server) ListBaseBackups(ctx context.Context, req *agentv1.ListBaseBackupsRequest) (*agentv1.ListBaseBackupsResponse, error) {
	if s.store == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
	}
	list, skipped, err := basebackup.List(ctx, s.store, req.Source)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list base backups in %s: %v", s.store, err)
	}
	out := &agentv1.ListBaseBackupsResponse{}
	for _, sk := range skipped {
		out.Skipped = append(out.Skipped, sk.String())
	}
	for _, b := range list {
		out.BaseBackups = append(out.BaseBackups, baseBackupProto(b))
	}
	return out, nil
}

// pruneBaseBackups applies the source's retention (the caller holds its
// lock) and logs what a real prune removed.
func (s *Server) pruneBaseBackups(ctx context.Context, src agentconfig.WALSource, e *files.Engine, dryRun bool) (*pgbackup.PruneResult, error) {
	return s.pruneBaseBackupsIn(ctx, s.store, src, e, dryRun)
}

// pruneBaseBackupsIn is pruneBaseBackups in store (the node's, or opened
// with a request's credentials).
func (s *Server) pruneBaseBackupsIn(ctx context.Context, store objstore.Store, src agentconfig.WALSource, e *files.Engine, dryRun bool) (*pgbackup.PruneResult, error) {
	if store == s.store && s.cfg.Store.Scoped {
		// restic forget deletes, which the node's credentials may not:
		// the plugin's prune forgets the removed backups' snapshots.
		e = nil
	}
	res, err := pgbackup.Prune(ctx, store, e, src.Name, src.BaseBackupRetention, dryRun)
	if err == nil && !dryRun {
		s.log.Info("base backup retention", "source", src.Name, "kept", len(res.Kept), "removed", len(res.Removed), "walFilesRemoved", res.WALFiles, "firstWAL", res.FirstWAL)
		if res.Deferred != "" {
			s.log.Info("base backup retention stopped: the store refused a delete; kubectl dr prune (or pg prune) finishes it with the plugin's credentials", "source", src.Name, "why", res.Deferred)
		}
	}
	return res, err
}

// RestorePostgres lays down a source's base backup with recovery settings
// in a new directory on this node, its WAL staged beside it, and, with
// verify, replays it in a scratch instance while the WAL is staged.
func (s *Server) RestorePostgres(req *agentv1.RestorePostgresRequest, stream agentv1.AgentService_RestorePostgresServer) error {
	target, err := pgRestoreTarget(req)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	// The WAL (and nothing else of a base backup) is decrypted with the
	// key the request brings; a bad one is told at once.
	identity, err := s.identityFrom(req)
	if err != nil {
		return err
	}
	if req.DryRun {
		if s.store == nil {
			return failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
		}
		plan, err := pgbackup.PlanRestore(stream.Context(), s.store, req.Source, target, identity)
		if err != nil {
			return status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		if err := pgbackup.VerifyBase(stream.Context(), s.store, s.recordPolicy(req.GetAllowUnsigned()), plan); err != nil {
			return recordStatus(err)
		}
		return stream.Send(&agentv1.RestorePostgresResponse{Event: &agentv1.RestorePostgresResponse_Result{Result: &agentv1.RestorePostgresResult{
			TargetDir: req.TargetDir, BaseBackup: plan.Base.ID, Plan: planProto(plan),
		}}})
	}
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	// The stage reports from its workers: one Send at a time.
	var sendMu sync.Mutex
	send := func(phase, msg string, st restic.RestoreStatus) {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = stream.Send(&agentv1.RestorePostgresResponse{Event: &agentv1.RestorePostgresResponse_Progress{Progress: &agentv1.Progress{
			Phase: phase, Message: msg, BytesDone: st.BytesRestored, BytesTotal: st.TotalBytes, Percent: 100 * st.PercentDone,
		}}})
	}
	r := pgbackup.RestoreRequest{
		Source:    req.Source,
		TargetDir: filepath.Clean(req.TargetDir),
		Target:    target,
		Identity:  identity,
		Replay:    req.Verify,
		Records:   s.recordPolicy(req.GetAllowUnsigned()),
		StageProgress: func(done, total int, bytes int64) {
			send("stage", fmt.Sprintf("%d of %d WAL files staged", done, total), restic.RestoreStatus{})
		},
	}
	restored, err := pgbackup.Restore(stream.Context(), r, e, s.store, func(phase string, st restic.RestoreStatus) { send(phase, "", st) })
	if isRecordRefusal(err) {
		return recordStatus(err)
	}
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	res := &agentv1.RestorePostgresResult{TargetDir: restored.Dir, BaseBackup: restored.Base.ID, StartCommand: restored.StartCommand, Plan: planProto(restored.Plan)}
	if req.Verify {
		send("verify", "replaying WAL in a scratch instance while it is staged", restic.RestoreStatus{})
		port, err := freePort()
		if err != nil {
			_ = restored.Stage.Remove()
			return status.Error(codes.Internal, err.Error())
		}
		v, err := pgbackup.VerifyWith(stream.Context(), restored.Dir, port, pgbackup.VerifyOptions{Stage: restored.Stage.Dir})
		// Promoted (or failed): the staged WAL is not needed any more.
		stageErr := restored.Stage.Stop()
		_ = restored.Stage.Remove()
		if err != nil {
			if stageErr != nil {
				err = fmt.Errorf("%w; staging the WAL failed: %v", err, stageErr)
			}
			return status.Errorf(codes.Aborted, "restored into %s, but the scratch instance did not recover: %v", restored.Dir, err)
		}
		if !v.RecoveredTo.IsZero() {
			res.RecoveredTo = timestamppb.New(v.RecoveredTo)
		}
		res.RowCounts = v.RowCounts
	}
	sendMu.Lock()
	defer sendMu.Unlock()
	return stream.Send(&agentv1.RestorePostgresResponse{Event: &agentv1.RestorePostgresResponse_Result{Result: res}})
}

// identityFrom is the one place a PostgreSQL restore gets the snapshot
// key for its request (Server.requestKey: in memory for the request only).
func (s *Server) identityFrom(req *agentv1.RestorePostgresRequest) (age.Identity, error) {
	return s.requestKey(req.GetSnapshotIdentity())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseBackupJobs are the sources' scheduled base backups, on the node
// whose config names the source (the one with its data directory).
func (s *Server) baseBackupJobs() []schedule.Job {
	var jobs []schedule.Job
	for _, src := range s.cfg.WAL.Sources {
		jobs = append(jobs, schedule.Job{
			Name: "base-backup-" + src.Name,
			Spec: src.BaseBackupSchedule,
			ShouldRun: func(context.Context) (bool, error) {
				if _, err := s.filesEngine(); err != nil {
					return false, errors.New(status.Convert(err).Message())
				}
				return true, nil
			},
			Run: func(ctx context.Context) error {
				unlock, err := s.lockSource(src.Name)
				if err != nil {
					return errors.New(status.Convert(err).Message())
				}
				defer unlock()
				e, _ := s.filesEngine()
				b, err := pgbackup.TakeBaseBackup(ctx, s.pgSource(src), s.cfg.NodeName, e, s.store, func(string, restic.BackupStatus) {})
				if err != nil {
					return err
				}
				s.log.Info("scheduled base backup", "source", b.Source, "id", b.ID, "start", b.StartLSN, "stop", b.StopLSN)
				if _, err := s.pruneBaseBackups(ctx, src, e, false); err != nil {
					return fmt.Errorf("base backup retention: %w", err)
				}
				return nil
			},
		})
	}
	return jobs
}
