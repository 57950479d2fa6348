package server_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// DrillService is served beside AgentService; a part that cannot start
// is refused with a reason and nothing is left in the state dir.
func TestDrillPartRefusals(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	cfg := &agentconfig.Config{NodeName: "worker-3", DataDir: filepath.Join(dir, "k3s"), TLS: c.server, StateDir: filepath.Join(dir, "state"),
		ClusterID: "c1", Store: objstore.Config{URL: "file://" + filepath.Join(dir, "store")}, Restic: agentconfig.Restic{Binary: "/nonexistent/restic"}}
	lis := startAgent(t, cfg)
	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cli := agentv1.NewDrillServiceClient(cc)
	run := func(req *agentv1.RunDrillPartRequest) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := cli.RunDrillPart(ctx, req)
		if err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return err
			}
			if m.GetResult() != nil {
				return nil
			}
		}
	}
	for _, tc := range []struct {
		name   string
		req    *agentv1.RunDrillPartRequest
		code   codes.Code
		reason string
	}{
		{"no part", &agentv1.RunDrillPartRequest{DrillId: "drill-1"}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"bad drill id", &agentv1.RunDrillPartRequest{DrillId: "../x", Part: &agentv1.RunDrillPartRequest_Bucket{Bucket: &agentv1.DrillBucket{Source: "media"}}}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"bad bucket source", &agentv1.RunDrillPartRequest{DrillId: "drill-1", Part: &agentv1.RunDrillPartRequest_Bucket{Bucket: &agentv1.DrillBucket{Source: "../x"}}}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"files off", &agentv1.RunDrillPartRequest{DrillId: "drill-1", Part: &agentv1.RunDrillPartRequest_Files{Files: &agentv1.DrillFiles{}}}, codes.FailedPrecondition, agentv1.ReasonFilesOff},
		{"no snapshot", &agentv1.RunDrillPartRequest{DrillId: "drill-1", Part: &agentv1.RunDrillPartRequest_Etcd{Etcd: &agentv1.DrillEtcd{Snapshot: &agentv1.SnapshotRef{Latest: true}}}}, codes.NotFound, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.req)
			if st := status.Convert(err); st.Code() != tc.code || agentclient.Reason(err) != tc.reason {
				t.Errorf("got %v (reason %q), want %v with reason %s", err, agentclient.Reason(err), tc.code, tc.reason)
			}
		})
	}
}
