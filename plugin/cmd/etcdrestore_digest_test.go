package cmd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// A server's part of an etcd restore carries the digest of its preview;
// the real agent prepares it while its data dir is the one previewed, and
// refuses it, writing no plan, once the data dir was replaced. (The full
// preview compares with a live etcd member, which these tests have not:
// the part's digest is asked the way the plugin asks the servers other
// than the one it previews on.)
func TestEtcdRestorePartIsRefusedWhenItsDataDirChangedSinceThePreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var dataDir string
	e.agent("server-1", func(c *agentconfig.Config) {
		c.Restore.Flavor = agentconfig.FlavorK3s
		c.Restore.EtcdDataDir = filepath.Join(c.DataDir, "server", "db", "etcd")
		dataDir = c.Restore.EtcdDataDir
	})
	if err := os.MkdirAll(filepath.Join(dataDir, "member", "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("ab", 32)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "snap-server-0-1", Node: "server-0", SHA256: sha, Created: time.Now().UTC(), Uploaded: true})

	ctx := context.Background()
	nodes, err := agentclient.Connect(ctx, (&testFactory{e}).AgentOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer nodes.Close()
	n, _ := nodes.Find("server-1")
	digest := func() string {
		t.Helper()
		stream, err := n.Conn.PreviewEtcdRestore(ctx, &agentv1.PreviewEtcdRestoreRequest{Snapshot: &agentv1.SnapshotRef{Name: "snap-server-0-1"}, DigestOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.GetPreview().GetSnapshot().GetSha256(); got != sha {
			t.Fatalf("the digest-only preview names sha256 %q", got)
		}
		return msg.GetPreview().GetDigest()
	}
	part := func(digest string) *agentv1.PrepareRestorePlanRequest {
		return &agentv1.PrepareRestorePlanRequest{Part: &agentv1.RestorePlanPart{
			PlanId: "restore-1", Node: "server-1", Role: agentv1.RestoreRole_RESTORE_ROLE_REJOIN, Flavor: agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S,
			Snapshot: &agentv1.SnapshotRef{Name: "snap-server-0-1"}, SnapshotSha256: sha,
			ResetServer: "server-0", ResetClientUrls: []string{"https://10.0.0.1:2379"}, PreviewDigest: digest,
		}}
	}
	noPlan := func(when string) {
		t.Helper()
		st, err := n.Conn.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{})
		if err != nil || st.PlanId != "" {
			t.Errorf("%s: the node holds plan %q (%v)", when, st.GetPlanId(), err)
		}
	}

	confirmed := digest()
	if len(confirmed) != 64 {
		t.Fatalf("digest %q", confirmed)
	}

	_, err = n.Conn.PrepareRestorePlan(ctx, part(""))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "the restore names no preview") {
		t.Errorf("a part without a digest: %v", err)
	}
	noPlan("a part without a digest")

	if err := os.Rename(dataDir, dataDir+"-elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = n.Conn.PrepareRestorePlan(ctx, part(confirmed))
	if status.Code(err) != codes.FailedPrecondition || agentclient.Reason(err) != agentv1.ReasonPreviewChanged {
		t.Fatalf("a part whose data dir was replaced: %v (reason %q), want FailedPrecondition %s", err, agentclient.Reason(err), agentv1.ReasonPreviewChanged)
	}
	for _, want := range []string{"changed since the preview on node server-1: data dir " + dataDir + " was replaced", "run the restore again to see the new preview"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	noPlan("a refused part")

	if _, err := n.Conn.PrepareRestorePlan(ctx, part(digest())); err != nil {
		t.Fatalf("with the new preview's digest: %v", err)
	}
	if _, err := n.Conn.DiscardRestorePlan(ctx, &agentv1.DiscardRestorePlanRequest{PlanId: "restore-1"}); err != nil {
		t.Fatal(err)
	}
}
