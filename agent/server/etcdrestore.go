package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/backupset"
	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// PreviewEtcdRestore fetches and verifies the snapshot into the state dir
// (where a restore on this node takes it from), reads it read-only and
// compares it with the live keys of the local etcd member.
func (s *Server) PreviewEtcdRestore(req *agentv1.PreviewEtcdRestoreRequest, stream agentv1.AgentService_PreviewEtcdRestoreServer) error {
	ctx := stream.Context()
	if !s.snapshots.Layout.IsEtcdMember() {
		return status.Errorf(codes.FailedPrecondition, "node %s runs no etcd member (%s has no server/db/etcd): preview on a server node", s.cfg.NodeName, s.cfg.DataDir)
	}
	progress := func(phase, msg string) {
		_ = stream.Send(&agentv1.PreviewEtcdRestoreResponse{Event: &agentv1.PreviewEtcdRestoreResponse_Progress{Progress: &agentv1.Progress{Phase: phase, Message: msg}}})
	}
	snap, path, err := s.fetchForRestore(ctx, req.GetSnapshot(), progress)
	if err != nil {
		return err
	}
	progress("read-snapshot", "reading "+snap.Name)
	contents, err := etcdsnap.SnapshotContents(path)
	if err != nil {
		return status.Errorf(codes.DataLoss, "%v", err)
	}
	progress("read-live", "reading the live keys of the local member")
	cli, err := s.snapshots.Client.New()
	if err != nil {
		return status.Errorf(codes.Unavailable, "local etcd: %v", err)
	}
	defer cli.Close()
	live, err := etcdsnap.LiveContents(ctx, cli)
	if err != nil {
		return status.Errorf(codes.Unavailable, "%v: the preview compares with the live cluster, so the local member must answer", err)
	}
	preview := &agentv1.EtcdRestorePreview{Snapshot: snap.Proto(), LiveRevision: live.Revision}
	for _, d := range etcdsnap.Diff(contents, live) {
		preview.Impact = append(preview.Impact, &agentv1.ResourceImpact{
			GroupResource: d.GroupResource, Namespace: d.Namespace,
			Disappear: d.Disappear, Reappear: d.Reappear, Change: d.Change, Unchanged: d.Unchanged,
			DisappearNames: d.DisappearNames, ReappearNames: d.ReappearNames, ChangeNames: d.ChangeNames,
		})
	}
	return stream.Send(&agentv1.PreviewEtcdRestoreResponse{Event: &agentv1.PreviewEtcdRestoreResponse_Preview{Preview: preview}})
}

// resolveSnapshot finds the snapshot a request names in the store: by
// name, the one of a backup set, or the newest.
func (s *Server) resolveSnapshot(ctx context.Context, ref *agentv1.SnapshotRef) (*etcdsnap.Snapshot, error) {
	if s.store == nil {
		return nil, status.Error(codes.FailedPrecondition, "no store configured on this node's agent")
	}
	list, err := etcdsnap.ListStore(ctx, s.store)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list snapshots in %s: %v", s.store, err)
	}
	name := ref.GetName()
	switch {
	case ref.GetBackupSet() != "":
		set, err := backupset.Read(ctx, s.store, ref.GetBackupSet())
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "%v", err)
		}
		if set.Etcd == nil || set.Etcd.Snapshot == "" {
			return nil, status.Errorf(codes.NotFound, "backup set %s has no etcd snapshot", set.ID)
		}
		name = set.Etcd.Snapshot
	case ref.GetLatest():
		etcdsnap.SortNewestFirst(list)
		if len(list) == 0 {
			return nil, status.Errorf(codes.NotFound, "no etcd snapshot in %s", s.store)
		}
		return list[0], nil
	}
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name a snapshot, a backup set, or ask for the latest")
	}
	snap, ok := etcdsnap.Find(list, name)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no etcd snapshot named %q in %s: `kubectl dr etcd snapshot ls` lists them", name, s.store)
	}
	return snap, nil
}

// fetchForRestore downloads the snapshot into <stateDir>/restore/, or
// reuses a copy there whose sha256 matches; either way the file has been
// verified against the snapshot's metadata.
func (s *Server) fetchForRestore(ctx context.Context, ref *agentv1.SnapshotRef, progress func(phase, msg string)) (*etcdsnap.Snapshot, string, error) {
	snap, err := s.resolveSnapshot(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(s.cfg.StateDir, "restore", snap.Name+".db")
	if err := etcdsnap.VerifyLocal(path, snap); err == nil {
		progress("verify", "using the verified copy "+path)
		return snap, path, nil
	}
	var id age.Identity
	if snap.Encrypted() {
		if s.cfg.Etcd.SnapshotKeyFile == "" {
			return nil, "", status.Errorf(codes.FailedPrecondition, "%s is encrypted and this agent has no snapshot key (etcd.snapshotKeyFile)", snap.Name)
		}
		x, err := etcdsnap.LoadIdentity(s.cfg.Etcd.SnapshotKeyFile)
		if err != nil {
			return nil, "", status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		id = x
	}
	progress("download", fmt.Sprintf("downloading %s (%d bytes) and verifying its sha256", snap.Name, snap.Size))
	os.Remove(path)
	if err := etcdsnap.Fetch(ctx, s.store, snap, id, path); err != nil {
		if errors.Is(err, etcdsnap.ErrChecksum) {
			return nil, "", status.Errorf(codes.DataLoss, "%v: refused, nothing was changed", err)
		}
		return nil, "", status.Errorf(codes.Unavailable, "%v", err)
	}
	return snap, path, nil
}
