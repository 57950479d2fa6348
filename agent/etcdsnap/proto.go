package etcdsnap

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// Proto converts the snapshot for the agent API.
func (s *Snapshot) Proto() *agentv1.EtcdSnapshot {
	p := &agentv1.EtcdSnapshot{
		Name:                s.Name,
		Node:                s.Node,
		Created:             timestamppb.New(s.Created),
		SizeBytes:           s.Size,
		CompressedSizeBytes: s.StoredSize,
		Revision:            s.Revision,
		EtcdVersion:         s.EtcdVersion,
		Sha256:              s.SHA256,
		CompressedSha256:    s.StoredSHA256,
		ClusterId:           s.ClusterID,
		LocalPath:           s.LocalPath,
		StoreKey:            s.StoreKey,
		Uploaded:            s.Uploaded,
		Encrypted:           s.Encrypted(),
		Encryption:          s.Encryption,
		BackupSet:           s.BackupSet,
		UploadError:         s.UploadError,
		Scheduled:           s.Scheduled,
		EtcdClusterId:       s.EtcdClusterID,
	}
	if b := s.Bootstrap; b != nil {
		p.BootstrapFiles, p.BootstrapStoreKey, p.BootstrapSha256, p.BootstrapSkipped = b.Files, b.StoreKey, b.StoredSHA, b.Skipped
	}
	return p
}

// FromProto is the inverse of Proto.
func FromProto(p *agentv1.EtcdSnapshot) *Snapshot {
	s := &Snapshot{
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
	}
	if p.Created != nil {
		s.Created = p.Created.AsTime()
	}
	if len(p.BootstrapFiles) > 0 || p.BootstrapSkipped != "" {
		s.Bootstrap = &Bootstrap{Files: p.BootstrapFiles, StoreKey: p.BootstrapStoreKey, StoredSHA: p.BootstrapSha256, Skipped: p.BootstrapSkipped}
	}
	return s
}
