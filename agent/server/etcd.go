package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// OnDemandName is the default name of snapshots taken by hand, as k3s
// names them.
const OnDemandName = "on-demand"

// SaveEtcdSnapshot takes a snapshot of the local member, streaming progress.
func (s *Server) SaveEtcdSnapshot(req *agentv1.SaveEtcdSnapshotRequest, stream agentv1.AgentService_SaveEtcdSnapshotServer) error {
	name := req.Name
	if name == "" {
		name = OnDemandName
	}
	if err := dbsnap.ValidateName(name); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	send := func(phase, msg string, done, total int64) {
		p := &agentv1.Progress{Phase: phase, Message: msg, BytesDone: done, BytesTotal: total}
		if total > 0 {
			p.Percent = 100 * float64(done) / float64(total)
		}
		_ = stream.Send(&agentv1.SaveEtcdSnapshotResponse{Event: &agentv1.SaveEtcdSnapshotResponse_Progress{Progress: p}})
	}
	s.metrics.startSnapshot()
	snap, err := s.snapshots.Save(stream.Context(), etcdsnap.SaveRequest{
		Name:      name,
		BackupSet: req.BackupSet,
		Progress:  func(phase string, done, total int64) { send(phase, "", done, total) },
	})
	s.metrics.observeSnapshot(snap, err)
	if err != nil {
		return snapshotError(err)
	}
	// Earlier snapshots the store missed go up now that it answered.
	if snap.Uploaded {
		if done, err := s.snapshots.UploadPending(stream.Context()); err != nil {
			send("upload-pending", "earlier local snapshots still not uploaded: "+err.Error(), 0, 0)
		} else if len(done) > 0 {
			send("upload-pending", fmt.Sprintf("uploaded %d earlier local snapshot(s)", len(done)), 0, 0)
		}
	}
	return stream.Send(&agentv1.SaveEtcdSnapshotResponse{Event: &agentv1.SaveEtcdSnapshotResponse_Snapshot{Snapshot: snapshotProto(snap)}})
}

// ListEtcdSnapshots lists the cluster's snapshots in the store and, if
// asked, this node's local snapshots that are not in it.
func (s *Server) ListEtcdSnapshots(ctx context.Context, req *agentv1.ListEtcdSnapshotsRequest) (*agentv1.ListEtcdSnapshotsResponse, error) {
	resp := &agentv1.ListEtcdSnapshotsResponse{}
	if s.snapshots.Store != nil {
		list, skipped, err := dbsnap.ListStore(ctx, s.snapshots.Store)
		for _, sk := range skipped {
			resp.Skipped = append(resp.Skipped, sk.String())
		}
		switch {
		case err != nil && !req.IncludeLocal:
			return nil, status.Error(codes.Unavailable, err.Error())
		case err != nil:
			resp.StoreError = err.Error()
		}
		for _, snap := range list {
			resp.Snapshots = append(resp.Snapshots, snapshotProto(snap))
		}
	}
	if req.IncludeLocal {
		local, err := s.snapshots.ListLocal()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		for _, snap := range local {
			resp.Snapshots = append(resp.Snapshots, snapshotProto(snap))
		}
	}
	return resp, nil
}

// DeleteEtcdSnapshots removes snapshots from the store and this node's
// local copies.
func (s *Server) DeleteEtcdSnapshots(ctx context.Context, req *agentv1.DeleteEtcdSnapshotsRequest) (*agentv1.DeleteEtcdSnapshotsResponse, error) {
	for _, n := range req.Names {
		if err := dbsnap.ValidateName(n); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	var stored []*dbsnap.Snapshot
	store, err := s.requestStore(req.StoreCredentials)
	if err != nil {
		return nil, err
	}
	if s.snapshots.Store == nil {
		store = nil
	}
	if store != nil {
		if stored, _, err = dbsnap.ListStore(ctx, store); err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	resp := &agentv1.DeleteEtcdSnapshotsResponse{}
	var missing []string
	for _, n := range req.Names {
		found := false
		if snap, ok := dbsnap.Find(stored, n); ok {
			if err := dbsnap.DeleteFromStore(ctx, store, snap); objstore.Refused(err) {
				return resp, status.Errorf(codes.PermissionDenied, "%v (the snapshot is whole; kubectl dr etcd snapshot rm sends the plugin's credentials)", err)
			} else if err != nil {
				return resp, status.Error(codes.Unavailable, err.Error())
			}
			found = true
		}
		local, err := s.snapshots.DeleteLocal(n)
		if err != nil {
			return resp, status.Error(codes.Internal, err.Error())
		}
		if found || local {
			resp.Deleted = append(resp.Deleted, n)
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return resp, status.Errorf(codes.NotFound, "no snapshot named %v in %s or on node %s", missing, s.storeName(), s.cfg.NodeName)
	}
	return resp, nil
}

// PruneEtcdSnapshots applies retention to scheduled snapshots now.
func (s *Server) PruneEtcdSnapshots(ctx context.Context, req *agentv1.PruneEtcdSnapshotsRequest) (*agentv1.PruneEtcdSnapshotsResponse, error) {
	r := s.cfg.Etcd.Retention
	if p := req.Retention; p != nil {
		r = agentconfig.Retention{KeepLast: int(p.KeepLast), KeepHourly: int(p.KeepHourly), KeepDaily: int(p.KeepDaily), KeepWeekly: int(p.KeepWeekly), KeepMonthly: int(p.KeepMonthly)}
	}
	store, err := s.requestStore(req.StoreCredentials)
	if err != nil {
		return nil, err
	}
	if s.snapshots.Store == nil {
		store = nil
	}
	res, err := s.snapshots.PruneIn(ctx, store, s.cfg.Etcd.ScheduleName, r, req.DryRun)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &agentv1.PruneEtcdSnapshotsResponse{Kept: res.Kept, Removed: res.Removed, Deferred: res.Deferred}, nil
}

func (s *Server) storeName() string {
	if s.snapshots.Store == nil {
		return "no store"
	}
	return s.snapshots.Store.String()
}

func snapshotError(err error) error {
	switch {
	case errors.Is(err, etcdsnap.ErrNotMember):
		return failure(codes.FailedPrecondition, agentv1.ReasonNotEtcdMember, "%v", err)
	case errors.Is(err, etcdsnap.ErrBusy):
		return failure(codes.Aborted, agentv1.ReasonBusy, "%v", err)
	case errors.Is(err, dbsnap.ErrInvalidName):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, objstore.ErrNotFound):
		return failure(codes.NotFound, agentv1.ReasonNotFound, "%v", err)
	}
	return status.Error(codes.Internal, err.Error())
}
