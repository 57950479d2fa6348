package server

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// snapshotProto converts a snapshot record for the agent API.
func snapshotProto(s *dbsnap.Snapshot) *agentv1.EtcdSnapshot {
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
		Datastore:           s.Datastore,
		Origin:              s.Origin,
	}
	if s.Imported != nil {
		p.OriginalName = s.Imported.OriginalName
	}
	if b := s.Bootstrap; b != nil {
		p.BootstrapFiles, p.BootstrapStoreKey, p.BootstrapSha256, p.BootstrapSkipped = b.Files, b.StoreKey, b.StoredSHA, b.Skipped
	}
	return p
}

// baseBackupProto is the base backup as the agent API carries it.
func baseBackupProto(b *basebackup.BaseBackup) *agentv1.BaseBackupResult {
	return &agentv1.BaseBackupResult{
		Id: b.ID, Source: b.Source, Node: b.Node, StartLsn: b.StartLSN, StopLsn: b.StopLSN, Timeline: b.Timeline,
		StartTime: timestamppb.New(b.StartTime), StopTime: timestamppb.New(b.StopTime), SizeBytes: b.Bytes,
	}
}
