package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/backupverify"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// newFiles sets up the node's file backups; nil (with the reason) when the
// config leaves them off.
func (s *Server) newFiles(cfg *agentconfig.Config, store objstore.Store) (*files.Engine, string, error) {
	switch {
	case store == nil:
		return nil, "no store is configured", nil
	case cfg.Restic.PasswordFile == "":
		return nil, "restic.passwordFile is not set in the agent config", nil
	}
	loc, err := cfg.Store.Restic(filepath.Join(cfg.ClusterID, files.RepoDir), cfg.StateDir)
	if err != nil {
		return nil, "", err
	}
	return &files.Engine{
		Node: cfg.NodeName,
		Repo: &restic.Repo{
			Binary:       cfg.Restic.Binary,
			Repository:   loc.Repository,
			PasswordFile: cfg.Restic.PasswordFile,
			Env:          loc.Env,
			Options:      loc.Options,
			CacheDir:     cfg.Restic.CacheDir,
			LockWait:     2 * time.Minute,
		},
		Store:    store,
		Paths:    cfg.Restic.PathsFor(cfg.NodeName),
		AsideDir: filepath.Join(cfg.StateDir, "restore-aside"),
		PVs:      s.pvs.persistentVolumePaths,
		// Every container of a pod gets the variable from the kubelet.
		InContainer: os.Getenv("KUBERNETES_SERVICE_HOST") != "",
	}, "", nil
}

// recoverFileRestores undoes the file restores an earlier run of the agent
// was killed in the middle of, before anything new starts.
func (s *Server) recoverFileRestores() {
	if s.files == nil {
		return
	}
	undone, err := s.files.RecoverRestores()
	for _, j := range undone {
		s.log.Warn("a file restore was interrupted: the node's files are put back as they were", "journal", j)
	}
	if err != nil {
		s.log.Error("undo an interrupted file restore", "err", err)
	}
}

func (s *Server) filesEngine() (*files.Engine, error) {
	if s.files == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonFilesOff, "file backups are off on node %s: %s", s.cfg.NodeName, s.filesOff)
	}
	// The password is a mounted Secret: it may appear after the agent
	// started, so it is looked for at each call.
	if _, err := os.Stat(s.files.Repo.PasswordFile); err != nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonFilesOff, "file backups are off on node %s: restic password file: %v (kubectl dr install creates the Secret dr-system/dr-restic)", s.cfg.NodeName, err)
	}
	return s.files, nil
}

// BackupFiles snapshots the node's paths with restic.
func (s *Server) BackupFiles(req *agentv1.BackupFilesRequest, stream agentv1.AgentService_BackupFilesServer) error {
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	if req.BackupSet != "" {
		if err := backupset.ValidateID(req.BackupSet); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	start := time.Now()
	res, err := e.Backup(stream.Context(), files.BackupRequest{Set: req.BackupSet, Paths: req.Paths, Tags: req.Tags}, func(st restic.BackupStatus) {
		_ = stream.Send(&agentv1.BackupFilesResponse{Event: &agentv1.BackupFilesResponse_Progress{Progress: &agentv1.Progress{
			Phase: "backup", BytesDone: st.BytesDone, BytesTotal: st.TotalBytes,
			FilesDone: st.FilesDone, FilesTotal: st.TotalFiles,
			Percent: 100 * st.PercentDone, EtaSeconds: st.SecondsRemaining,
		}}})
	})
	s.metrics.observeFiles(start, res, err)
	if err != nil {
		return filesError(err)
	}
	return stream.Send(&agentv1.BackupFilesResponse{Event: &agentv1.BackupFilesResponse_Snapshot{Snapshot: fileSnapshotProto(s.cfg.NodeName, res)}})
}

func fileSnapshotProto(node string, res *files.BackupResult) *agentv1.FileSnapshot {
	sum := res.Summary
	fs := &agentv1.FileSnapshot{
		Id:              sum.SnapshotID,
		Node:            node,
		Paths:           res.Paths,
		Time:            timestamppb.New(sum.BackupEnd),
		FilesNew:        sum.FilesNew,
		FilesChanged:    sum.FilesChanged,
		FilesUnmodified: sum.FilesUnmodified,
		BytesAdded:      sum.DataAdded,
		TotalBytes:      sum.TotalBytesProcessed,
		TotalFiles:      sum.TotalFilesProcessed,
		Warnings:        sum.Warnings,
	}
	for claim := range res.PVCs {
		fs.Pvcs = append(fs.Pvcs, claim)
	}
	return fs
}

func restoreTarget(t *agentv1.FileRestoreTarget) files.Target {
	if t == nil {
		return files.Target{}
	}
	return files.Target{
		SnapshotID: t.SnapshotId, Set: t.BackupSet, SourceNode: t.SourceNode,
		Paths: t.Paths, PVC: t.Pvc, Dir: t.TargetDir, Into: t.IntoDir,
	}
}

// PreviewFileRestore says what a restore would create, replace and leave.
func (s *Server) PreviewFileRestore(req *agentv1.PreviewFileRestoreRequest, stream agentv1.AgentService_PreviewFileRestoreServer) error {
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	_ = stream.Send(&agentv1.PreviewFileRestoreResponse{Event: &agentv1.PreviewFileRestoreResponse_Progress{Progress: &agentv1.Progress{Phase: "preview", Message: "comparing the snapshot with the node's files"}}})
	pv, err := e.Preview(stream.Context(), restoreTarget(req.Target))
	if err != nil {
		return filesError(err)
	}
	out := &agentv1.RestorePreview{
		CreateFiles: pv.Create.Files, CreateBytes: pv.Create.Bytes,
		ChangeFiles: pv.Change.Files, ChangeBytes: pv.Change.Bytes,
		UnchangedFiles: pv.Unchanged.Files, UnchangedBytes: pv.Unchanged.Bytes,
		ExtraFiles: pv.Extra.Files, ExtraBytes: pv.Extra.Bytes,
		Truncated: pv.Truncated, SnapshotId: pv.SnapshotID, TargetDir: pv.Target, Paths: pv.Includes,
		Digest: pv.Digest,
	}
	for _, c := range pv.Changes {
		kind := agentv1.FileChange_KIND_CREATE
		if c.Kind == "change" {
			kind = agentv1.FileChange_KIND_CHANGE
		}
		out.Changes = append(out.Changes, &agentv1.FileChange{Path: c.Path, Kind: kind, SizeBytes: c.Size})
	}
	return stream.Send(&agentv1.PreviewFileRestoreResponse{Event: &agentv1.PreviewFileRestoreResponse_Preview{Preview: out}})
}

// RestoreFiles restores what the preview with the request's digest
// showed, moving what it replaces aside first.
func (s *Server) RestoreFiles(req *agentv1.RestoreFilesRequest, stream agentv1.AgentService_RestoreFilesServer) error {
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	if err := previewDigestGiven(req.GetPreviewDigest(), req.GetNoPreview()); err != nil {
		return err
	}
	res, err := e.Restore(stream.Context(), restoreTarget(req.Target), req.GetPreviewDigest(), func(st restic.RestoreStatus) {
		_ = stream.Send(&agentv1.RestoreFilesResponse{Event: &agentv1.RestoreFilesResponse_Progress{Progress: &agentv1.Progress{
			Phase: "restore", BytesDone: st.BytesRestored, BytesTotal: st.TotalBytes,
			FilesDone: st.FilesRestored, FilesTotal: st.TotalFiles, Percent: 100 * st.PercentDone,
		}}})
	})
	if err != nil {
		return filesError(err)
	}
	s.log.Info("files restored", "files", res.Files, "bytes", res.Bytes, "movedAside", res.AsideDir)
	return stream.Send(&agentv1.RestoreFilesResponse{Event: &agentv1.RestoreFilesResponse_Result{Result: &agentv1.RestoreFilesResult{
		FilesRestored: res.Files, BytesRestored: res.Bytes, MovedAsideDir: res.AsideDir,
	}}})
}

// VerifyBackup checks a backup set: restic check over the repository
// (reading back a subset of the data when asked), the set's restic
// snapshots present, and its etcd snapshot's stored checksum.
func (s *Server) VerifyBackup(req *agentv1.VerifyBackupRequest, stream agentv1.AgentService_VerifyBackupServer) error {
	if s.store == nil {
		return failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
	}
	ctx := stream.Context()
	progress := func(phase, msg string) {
		_ = stream.Send(&agentv1.VerifyBackupResponse{Event: &agentv1.VerifyBackupResponse_Progress{Progress: &agentv1.Progress{Phase: phase, Message: msg}}})
	}
	set, err := backupset.Read(ctx, s.store, req.BackupSet)
	if err != nil {
		return filesError(err)
	}
	c := backupverify.Checker{Store: s.store, Files: s.filesEngine}
	res, err := c.Verify(ctx, set, req.ReadDataSubset, progress)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		if st, ok := filesStatus(err); ok {
			return st
		}
		return snapshotError(err)
	}
	return stream.Send(&agentv1.VerifyBackupResponse{Event: &agentv1.VerifyBackupResponse_Result{Result: &agentv1.VerifyResult{
		Ok: res.OK(), Checked: res.Checked, Problems: res.Problems,
	}}})
}

// ForgetFileSnapshots removes a set's restic snapshots, or applies the
// retention to this node's scheduled ones.
func (s *Server) ForgetFileSnapshots(req *agentv1.ForgetFileSnapshotsRequest, stream agentv1.AgentService_ForgetFileSnapshotsServer) error {
	e, err := s.filesEngine()
	if err != nil {
		return err
	}
	store, err := s.requestStore(req.StoreCredentials)
	if err != nil {
		return err
	}
	if e, err = s.requestFiles(e, req.StoreCredentials, store); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var removed []string
	if req.BackupSet != "" {
		if err := backupset.ValidateID(req.BackupSet); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		removed, err = e.Forget(stream.Context(), req.BackupSet, req.Prune)
	} else {
		removed, err = e.ApplyRetention(stream.Context(), resticPolicy(s.cfg.Restic.Retention, req.Retention))
	}
	if err != nil {
		return filesError(err)
	}
	return stream.Send(&agentv1.ForgetFileSnapshotsResponse{Event: &agentv1.ForgetFileSnapshotsResponse_Result{Result: &agentv1.ForgetResult{RemovedSnapshots: removed}}})
}

func resticPolicy(cfg agentconfig.Retention, req *agentv1.Retention) restic.Policy {
	if req != nil {
		return restic.Policy{KeepLast: int(req.KeepLast), KeepHourly: int(req.KeepHourly), KeepDaily: int(req.KeepDaily), KeepWeekly: int(req.KeepWeekly), KeepMonthly: int(req.KeepMonthly)}
	}
	return restic.Policy{KeepLast: cfg.KeepLast, KeepHourly: cfg.KeepHourly, KeepDaily: cfg.KeepDaily, KeepWeekly: cfg.KeepWeekly, KeepMonthly: cfg.KeepMonthly}
}

// previewDigestGiven wants a restore to name the preview it carries out,
// or to say it has none.
func previewDigestGiven(digest string, noPreview bool) error {
	switch {
	case digest != "" && noPreview:
		return status.Error(codes.InvalidArgument, "a restore carries a preview_digest or no_preview, not both")
	case digest == "" && !noPreview:
		return status.Error(codes.InvalidArgument, "the restore names no preview: preview it first and pass the preview's digest as preview_digest (kubectl dr does), or set no_preview to restore whatever the node holds now; nothing was changed")
	case digest != "" && !validDigest(digest):
		return status.Errorf(codes.InvalidArgument, "preview_digest %q: want the 64 hex digits of a preview's digest", digest)
	}
	return nil
}

func validDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for _, r := range d {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

func filesError(err error) error {
	if st, ok := filesStatus(err); ok {
		return st
	}
	return status.Error(codes.Internal, err.Error())
}

// filesStatus maps the files engine's (and restic's) errors; ok is false
// for any other error.
func filesStatus(err error) (error, bool) {
	switch {
	case errors.Is(err, files.ErrBusy):
		return failure(codes.Aborted, agentv1.ReasonBusy, "%v", err), true
	case errors.Is(err, files.ErrPreviewChanged):
		return failure(codes.FailedPrecondition, agentv1.ReasonPreviewChanged, "%v", err), true
	case errors.Is(err, files.ErrNoPaths):
		return failure(codes.FailedPrecondition, agentv1.ReasonNoPaths, "%v", err), true
	case errors.Is(err, files.ErrNotRepository), errors.Is(err, files.ErrNoRepo):
		return status.Error(codes.FailedPrecondition, err.Error()), true
	case errors.Is(err, files.ErrOutsideRoots), errors.Is(err, files.ErrNotOnNode):
		return status.Error(codes.InvalidArgument, err.Error()), true
	case errors.Is(err, files.ErrNoSnapshot), errors.Is(err, backupset.ErrNotFound):
		return failure(codes.NotFound, agentv1.ReasonNotFound, "%v", err), true
	case errors.Is(err, restic.ErrWrongPassword):
		return status.Error(codes.PermissionDenied, err.Error()), true
	case errors.Is(err, restic.ErrInterrupted), errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error()), true
	}
	return nil, false
}
