package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/snapfile"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// k3sSnapshots serves K3sSnapshotService: k3s's own snapshots in this
// server's server/db/snapshots.
type k3sSnapshots struct {
	agentv1.UnimplementedK3SSnapshotServiceServer
	s *Server
}

// ListK3SSnapshots lists the snapshot files k3s keeps here; the plugin
// leaves out the names already in the catalog (kubectl dr's own copies
// live in the same directory under the same naming).
func (k k3sSnapshots) ListK3SSnapshots(ctx context.Context, _ *agentv1.ListK3SSnapshotsRequest) (*agentv1.ListK3SSnapshotsResponse, error) {
	dir := k.s.snapshots.Layout.SnapshotsDir()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return &agentv1.ListK3SSnapshotsResponse{}, nil
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list %s: %v", dir, err)
	}
	resp := &agentv1.ListK3SSnapshotsResponse{}
	for _, e := range entries {
		// .part files are copies being written (ours and durable's).
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".part") || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		resp.Snapshots = append(resp.Snapshots, &agentv1.K3SSnapshotFile{
			Name: e.Name(), Node: k.s.cfg.NodeName, SizeBytes: info.Size(),
			Modified: timestamppb.New(info.ModTime()), Path: filepath.Join(dir, e.Name()),
		})
	}
	return resp, nil
}

// ImportK3SSnapshot verifies one of k3s's snapshots here and uploads it
// into the catalog under this node, as the plugin's import of a file does.
func (k k3sSnapshots) ImportK3SSnapshot(ctx context.Context, req *agentv1.ImportK3SSnapshotRequest) (*agentv1.ImportK3SSnapshotResponse, error) {
	snaps := k.s.snapshots
	if err := dbsnap.ValidateName(req.Name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	name := req.CatalogName
	if name == "" {
		name = strings.TrimSuffix(req.Name, ".zip")
	}
	if err := dbsnap.ValidateName(name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if snaps.Store == nil {
		return nil, status.Error(codes.FailedPrecondition, "no store configured on this agent: nothing to import into")
	}
	path := filepath.Join(snaps.Layout.SnapshotsDir(), req.Name)
	st, err := os.Stat(path)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "no k3s snapshot %s here (%v): kubectl dr etcd snapshot ls --all lists them", req.Name, err)
	}
	tmp := filepath.Join(k.s.cfg.StateDir, "import")
	if err := durable.MkdirAll(tmp, 0o700); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	file, err := snapfile.Verify(path, snapfile.Options{NoHash: req.NoHash, TempDir: tmp})
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "import refused, nothing was uploaded: %v", err)
	}
	defer file.Close()
	snap := &dbsnap.Snapshot{
		Name: name, Node: k.s.cfg.NodeName, Created: st.ModTime().UTC(), ClusterID: snaps.ClusterID,
		Revision: file.Revision, Size: file.Size, SHA256: file.SHA256, Origin: dbsnap.OriginImported,
		Imported: &dbsnap.Imported{
			OriginalName: req.Name, Kind: file.Kind, Size: st.Size(), SHA256: file.InputSHA256,
			EntryName: file.EntryName, NoHash: file.Kind == snapfile.KindBoltDB, Host: k.s.cfg.NodeName,
			ImportedAt: time.Now().UTC(),
		},
	}
	if err := dbsnap.Put(ctx, snaps.Store, snap, file.Path, snaps.Recipient, k.s.recordSigner()); err != nil {
		if errors.Is(err, dbsnap.ErrExists) {
			return nil, status.Errorf(codes.AlreadyExists, "%v: give --name another name", err)
		}
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &agentv1.ImportK3SSnapshotResponse{Snapshot: snapshotProto(snap)}, nil
}
