package cmd_test

import (
	"context"
	"sync"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// fakeFilesAgent stands in for an agent with restic, which the real agent
// cannot have here: it answers Info, and BackupFiles, PreviewFileRestore
// and RestoreFiles with canned results, recording the requests.
type fakeFilesAgent struct {
	agentv1.UnimplementedAgentServiceServer
	node     string
	snapshot *agentv1.FileSnapshot
	preview  *agentv1.RestorePreview
	result   *agentv1.RestoreFilesResult

	mu       sync.Mutex
	restores []*agentv1.FileRestoreTarget
	digests  []string
}

func (a *fakeFilesAgent) Info(context.Context, *agentv1.InfoRequest) (*agentv1.InfoResponse, error) {
	return &agentv1.InfoResponse{NodeName: a.node, AgentVersion: "fake", ResticVersion: "fake", Roles: []agentv1.NodeRole{agentv1.NodeRole_NODE_ROLE_AGENT}}, nil
}

func (a *fakeFilesAgent) BackupFiles(req *agentv1.BackupFilesRequest, stream agentv1.AgentService_BackupFilesServer) error {
	if err := stream.Send(&agentv1.BackupFilesResponse{Event: &agentv1.BackupFilesResponse_Progress{Progress: &agentv1.Progress{Phase: "backup", Percent: 50}}}); err != nil {
		return err
	}
	return stream.Send(&agentv1.BackupFilesResponse{Event: &agentv1.BackupFilesResponse_Snapshot{Snapshot: a.snapshot}})
}

func (a *fakeFilesAgent) PreviewFileRestore(req *agentv1.PreviewFileRestoreRequest, stream agentv1.AgentService_PreviewFileRestoreServer) error {
	return stream.Send(&agentv1.PreviewFileRestoreResponse{Event: &agentv1.PreviewFileRestoreResponse_Preview{Preview: a.preview}})
}

func (a *fakeFilesAgent) RestoreFiles(req *agentv1.RestoreFilesRequest, stream agentv1.AgentService_RestoreFilesServer) error {
	a.mu.Lock()
	a.restores = append(a.restores, req.Target)
	a.digests = append(a.digests, req.PreviewDigest)
	a.mu.Unlock()
	return stream.Send(&agentv1.RestoreFilesResponse{Event: &agentv1.RestoreFilesResponse_Result{Result: a.result}})
}

// restored is how many restores the agent was asked for.
func (a *fakeFilesAgent) restored() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.restores)
}
