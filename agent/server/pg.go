package server

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/config"
	"github.com/kubectl-dr/kubectl-dr/agent/pg"
	"github.com/kubectl-dr/kubectl-dr/agent/restic"
	"github.com/kubectl-dr/kubectl-dr/agent/schedule"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

func (s *Server) walSource(name string) (config.WALSource, bool) {
	for _, src := range s.cfg.WAL.Sources {
		if src.Name == name {
			return src, true
		}
	}
	return config.WALSource{}, false
}

// BaseBackup takes a base backup of a source whose data directory is on
// this node.
func (s *Server) BaseBackup(req *agentv1.BaseBackupRequest, stream agentv1.AgentService_BaseBackupServer) error {
	src, ok := s.walSource(req.Source)
	if !ok {
		return status.Errorf(codes.NotFound, "node %s has no WAL source %q", s.cfg.NodeName, req.Source)
	}
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	send := func(phase string, st restic.BackupStatus) {
		_ = stream.Send(&agentv1.BaseBackupResponse{Event: &agentv1.BaseBackupResponse_Progress{Progress: &agentv1.Progress{
			Phase: phase, BytesDone: st.BytesDone, BytesTotal: st.TotalBytes, FilesDone: st.FilesDone, FilesTotal: st.TotalFiles, Percent: 100 * st.PercentDone,
		}}})
	}
	b, err := pg.TakeBaseBackup(stream.Context(), pg.Source{Name: src.Name, Connection: src.Connection, PGData: src.PGData}, s.cfg.NodeName, e, s.store, send)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "base backup of %s: %v", src.Name, err)
	}
	s.log.Info("base backup", "source", b.Source, "id", b.ID, "start", b.StartLSN, "stop", b.StopLSN)
	return stream.Send(&agentv1.BaseBackupResponse{Event: &agentv1.BaseBackupResponse_Result{Result: &agentv1.BaseBackupResult{
		Id: b.ID, Source: b.Source, StartLsn: b.StartLSN, StopLsn: b.StopLSN, Timeline: b.Timeline,
		StartTime: timestamppb.New(b.StartTime), StopTime: timestamppb.New(b.StopTime), SizeBytes: b.Bytes,
	}}})
}

// RestorePostgres lays down a source's base backup with recovery settings
// in a new directory on this node and, with verify, replays it in a
// scratch instance.
func (s *Server) RestorePostgres(req *agentv1.RestorePostgresRequest, stream agentv1.AgentService_RestorePostgresServer) error {
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	r := pg.RestoreRequest{
		Source:    req.Source,
		TargetDir: filepath.Clean(req.TargetDir),
		Fetch:     pg.FetchSetup{AgentBinary: exe, ClusterID: s.cfg.ClusterID, Store: s.cfg.Store},
	}
	if t := req.GetTime(); t != nil {
		r.Target = t.AsTime()
	}
	send := func(phase, msg string, st restic.RestoreStatus) {
		_ = stream.Send(&agentv1.RestorePostgresResponse{Event: &agentv1.RestorePostgresResponse_Progress{Progress: &agentv1.Progress{
			Phase: phase, Message: msg, BytesDone: st.BytesRestored, BytesTotal: st.TotalBytes, Percent: 100 * st.PercentDone,
		}}})
	}
	restored, err := pg.Restore(stream.Context(), r, e, s.store, func(phase string, st restic.RestoreStatus) { send(phase, "", st) })
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	res := &agentv1.RestorePostgresResult{TargetDir: restored.Dir, BaseBackup: restored.Base.ID, StartCommand: restored.StartCommand}
	if req.Verify {
		send("verify", "replaying WAL in a scratch instance", restic.RestoreStatus{})
		port, err := freePort()
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		v, err := pg.Verify(stream.Context(), restored.Dir, port)
		// Promoted (or failed): restore_command's credentials are not
		// needed any more.
		_ = os.RemoveAll(pg.FetchDir(restored.Dir))
		if err != nil {
			return status.Errorf(codes.Aborted, "restored into %s, but the scratch instance did not recover: %v", restored.Dir, err)
		}
		if !v.RecoveredTo.IsZero() {
			res.RecoveredTo = timestamppb.New(v.RecoveredTo)
		}
		res.RowCounts = v.RowCounts
	}
	return stream.Send(&agentv1.RestorePostgresResponse{Event: &agentv1.RestorePostgresResponse_Result{Result: res}})
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
				e, _ := s.filesEngine()
				b, err := pg.TakeBaseBackup(ctx, pg.Source{Name: src.Name, Connection: src.Connection, PGData: src.PGData}, s.cfg.NodeName, e, s.store, func(string, restic.BackupStatus) {})
				if err != nil {
					return err
				}
				s.log.Info("scheduled base backup", "source", b.Source, "id", b.ID, "start", b.StartLSN, "stop", b.StopLSN)
				return nil
			},
		})
	}
	return jobs
}
