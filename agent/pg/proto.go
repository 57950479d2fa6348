package pg

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// Proto is the base backup as the agent API carries it.
func (b *BaseBackup) Proto() *agentv1.BaseBackupResult {
	return &agentv1.BaseBackupResult{
		Id: b.ID, Source: b.Source, Node: b.Node, StartLsn: b.StartLSN, StopLsn: b.StopLSN, Timeline: b.Timeline,
		StartTime: timestamppb.New(b.StartTime), StopTime: timestamppb.New(b.StopTime), SizeBytes: b.Bytes,
	}
}
