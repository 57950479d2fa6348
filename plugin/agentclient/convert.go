package agentclient

import (
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// SnapshotFromProto reads a snapshot record as an agent sent it.
func SnapshotFromProto(p *agentv1.EtcdSnapshot) *dbsnap.Snapshot {
	s := &dbsnap.Snapshot{
		Name:          p.Name,
		Node:          p.Node,
		ClusterID:     p.ClusterId,
		EtcdClusterID: p.EtcdClusterId,
		Revision:      p.Revision,
		EtcdVersion:   p.EtcdVersion,
		Size:          p.SizeBytes,
		SHA256:        p.Sha256,
		StoredSize:    p.CompressedSizeBytes,
		StoredSHA256:  p.CompressedSha256,
		Compression:   "zstd",
		Encryption:    p.Encryption,
		StoreKey:      p.StoreKey,
		LocalPath:     p.LocalPath,
		Uploaded:      p.Uploaded,
		UploadError:   p.UploadError,
		BackupSet:     p.BackupSet,
		Scheduled:     p.Scheduled,
		Datastore:     p.Datastore,
		Origin:        p.Origin,
	}
	if p.OriginalName != "" {
		s.Imported = &dbsnap.Imported{OriginalName: p.OriginalName}
	}
	if p.Created != nil {
		s.Created = p.Created.AsTime()
	}
	if len(p.BootstrapFiles) > 0 || p.BootstrapSkipped != "" {
		s.Bootstrap = &dbsnap.Bootstrap{Files: p.BootstrapFiles, StoreKey: p.BootstrapStoreKey, StoredSHA: p.BootstrapSha256, Skipped: p.BootstrapSkipped}
	}
	return s
}
