package restoreplan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// The same part gives the same digest while etcd writes in its data dir;
// another snapshot, or a data dir replaced, gives another.
func TestNodePreviewDigest(t *testing.T) {
	cfg := testConfig(t, agentconfig.FlavorK3s)
	member := filepath.Join(cfg.Restore.EtcdDataDir, "member")
	if err := os.MkdirAll(filepath.Join(member, "wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	first := NodePreview(cfg, "s1", "aaaa").Digest()
	if len(first) != 64 {
		t.Fatalf("digest %q: want 64 hex digits", first)
	}
	if err := os.WriteFile(filepath.Join(member, "wal", "0000000000000001-0000000000000001.wal"), []byte("entries"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := NodePreview(cfg, "s1", "aaaa").Digest(); d != first {
		t.Errorf("etcd writing in its data dir changed the digest")
	}
	if d := NodePreview(cfg, "s1", "bbbb").Digest(); d == first {
		t.Errorf("another checksum of the snapshot gave the same digest")
	}
	if d := NodePreview(cfg, "s2", "aaaa").Digest(); d == first {
		t.Errorf("another snapshot gave the same digest")
	}
	if err := os.Rename(cfg.Restore.EtcdDataDir, cfg.Restore.EtcdDataDir+"-old"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Restore.EtcdDataDir, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if d := NodePreview(cfg, "s1", "aaaa").Digest(); d == first {
		t.Errorf("a replaced data dir gave the same digest")
	}
}

// A part whose data dir was replaced after the preview is refused, saying
// so, and nothing is written; with the new preview's digest it prepares.
func TestPrepareRefusesAPartChangedSinceThePreview(t *testing.T) {
	cfg := testConfig(t, agentconfig.FlavorK3s)
	then := NodePreview(cfg, "s1", "aaaa")
	req := Request{ID: "plan-1", Flavor: agentconfig.FlavorK3s, Role: RoleRejoin, ResetClientURLs: []string{"https://x:2379"},
		SnapshotName: "s1", SnapshotSHA256: "aaaa", PreviewDigest: then.Digest(), Previewed: then}

	if err := os.Rename(cfg.Restore.EtcdDataDir, cfg.Restore.EtcdDataDir+"-other"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cfg.Restore.EtcdDataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(context.Background(), cfg, nil, req)
	if !errors.Is(err, ErrPreviewChanged) {
		t.Fatalf("err = %v, want ErrPreviewChanged", err)
	}
	for _, want := range []string{"changed since the preview on node server-1: data dir " + cfg.Restore.EtcdDataDir + " was replaced", "run the restore again to see the new preview"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := PlansIn(cfg.StateDir).Load("plan-1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused plan was written: %v", err)
	}

	req.PreviewDigest, req.Previewed = NodePreview(cfg, "s1", "aaaa").Digest(), nil
	if _, err := Prepare(context.Background(), cfg, nil, req); err != nil {
		t.Fatal(err)
	}
	if _, err := PlansIn(cfg.StateDir).Load("plan-1"); err != nil {
		t.Errorf("the plan was not written: %v", err)
	}
}

// A part that restores the snapshot is refused before the snapshot is
// fetched or the new data dir built.
func TestPrepareChecksThePreviewBeforeBuilding(t *testing.T) {
	cfg := testConfig(t, agentconfig.FlavorEtcd)
	req := Request{ID: "plan-1", Flavor: agentconfig.FlavorEtcd, MemberName: "m1", PeerURLs: []string{"https://10.0.0.1:2380"}, InitialCluster: "m1=https://10.0.0.1:2380",
		Resolve: func(context.Context) (*dbsnap.Snapshot, error) {
			return &dbsnap.Snapshot{Name: "s1", SHA256: "bbbb"}, nil
		},
		SnapshotSHA256: "bbbb", PreviewDigest: NodePreview(cfg, "s1", "aaaa").Digest()}
	_, err := Prepare(context.Background(), cfg, nil, req)
	if !errors.Is(err, ErrPreviewChanged) || !strings.Contains(err.Error(), "not what the preview saw") {
		t.Fatalf("err = %v, want ErrPreviewChanged", err)
	}
	if _, err := os.Stat(StagingDir(cfg.Restore.EtcdDataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused part built %s: %v", StagingDir(cfg.Restore.EtcdDataDir), err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "restore")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused part wrote into the state dir: %v", err)
	}
}
