package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// An agent configured with only the snapshot key's recipient refuses what
// must decrypt when the request brings no key (reason
// SNAPSHOT_KEY_NEEDED, saying what to do, nothing written); through the
// plugin's client, which sends the key with every such request, the same
// calls work; the key is written nowhere on the node.
func TestRequestsThatDecryptCarryTheSnapshotKey(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipientFile := filepath.Join(dir, "snapshot.recipient")
	if err := os.WriteFile(recipientFile, []byte("# the public half only\n"+id.Recipient().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	storeURL := "file://" + filepath.Join(dir, "store")
	root, err := objstore.Open(objstore.Config{URL: storeURL})
	if err != nil {
		t.Fatal(err)
	}
	store := root.Sub("cluster-1")
	data := bytes.Repeat([]byte("snapshot "), 1000)
	file := filepath.Join(dir, "snap.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	snap := &dbsnap.Snapshot{Name: "keys-server-1-1", Node: "server-1", Created: time.Now().UTC().Truncate(time.Second), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if err := dbsnap.Put(context.Background(), store, snap, file, id.Recipient(), signerOf(t, c.server1)); err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(dir, "k3s")
	if err := os.MkdirAll(filepath.Join(dataDir, "server", "db", "etcd"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := &agentconfig.Config{NodeName: "server-1", DataDir: dataDir, StateDir: filepath.Join(dir, "state"), TLS: c.server1,
		ClusterID: "cluster-1", Store: objstore.Config{URL: storeURL},
		Etcd:    agentconfig.Etcd{SnapshotRecipientFile: recipientFile},
		Restic:  agentconfig.Restic{Binary: "/nonexistent/restic"},
		Restore: agentconfig.Restore{Flavor: agentconfig.FlavorK3s, K3sBinary: "/bin/true", EtcdDataDir: filepath.Join(dataDir, "server", "db", "etcd"), StopCommand: []string{"true"}, StartCommand: []string{"true"}},
	}
	lis := startAgent(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := func(key agentclient.SnapshotKeyFunc) *agentclient.Conn {
		cc, err := agentclient.Dial(ctx, agentclient.Target{Node: "server-1", Address: "bufnet"}, agentclient.Options{TLS: c.client, SnapshotKey: key,
			Dialer: func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	part := func(plan string) *agentv1.PrepareRestorePlanRequest {
		return &agentv1.PrepareRestorePlanRequest{Part: &agentv1.RestorePlanPart{PlanId: plan, Node: "server-1", NoPreview: true,
			Role: agentv1.RestoreRole_RESTORE_ROLE_RESET, Flavor: agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S, Snapshot: &agentv1.SnapshotRef{Name: snap.Name}}}
	}
	const want = "this restore needs the snapshot key: run it through kubectl dr, or give dr-agent etcd restore --snapshot-key-file"
	refused := func(what string, err error) {
		t.Helper()
		if agentclient.Reason(err) != agentv1.ReasonSnapshotKeyNeeded || !strings.Contains(err.Error(), want) {
			t.Errorf("%s without the key: %v; want reason %s saying %q", what, err, agentv1.ReasonSnapshotKeyNeeded, want)
		}
	}

	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	raw := dial(t, lis, credentials.NewTLS(clientTLS))
	info, err := raw.Info(ctx, &agentv1.InfoRequest{})
	if err != nil || info.GetSnapshotEncryption() != "age" {
		t.Errorf("info: encryption %q, %v; want age (the recipient file)", info.GetSnapshotEncryption(), err)
	}
	_, err = conn(nil).Recover().Preflight(ctx, &agentv1.PreflightRequest{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}})
	refused("preflight", err)
	_, err = raw.PrepareRestorePlan(ctx, part("plan-nokey"))
	refused("prepare", err)
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "restore", "plans", "plan-nokey.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused plan's state file: %v", err)
	}
	stream, err := raw.PreviewEtcdRestore(ctx, &agentv1.PreviewEtcdRestoreRequest{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}})
	for err == nil {
		_, err = stream.Recv()
	}
	refused("preview", err)

	// The plugin could not read the key: its reason joins the agent's.
	_, err = conn(func(context.Context) ([]byte, error) {
		return nil, errors.New("secrets \"dr-snapshot-key\" is forbidden")
	}).PrepareRestorePlan(ctx, part("plan-forbidden"))
	refused("prepare, key unreadable", err)
	if err == nil || !strings.Contains(err.Error(), `kubectl dr could not read the snapshot key: secrets "dr-snapshot-key" is forbidden`) {
		t.Errorf("prepare with an unreadable key: %v; want the plugin's reason", err)
	}

	withKey := conn(agentclient.OnceKey(func(context.Context) ([]byte, error) { return []byte(id.String()), nil }))
	pf, err := withKey.Recover().Preflight(ctx, &agentv1.PreflightRequest{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}})
	if err != nil || pf.GetSnapshotSha256() != snap.SHA256 {
		t.Fatalf("preflight with the key: %v", err)
	}
	// An agent not enrolled (the shared bootstrap certificate) gets no key.
	bootstrapCfg := *cfg
	bootstrapCfg.TLS, bootstrapCfg.StateDir = c.server, filepath.Join(dir, "state-bootstrap")
	bootstrapLis := startAgent(t, &bootstrapCfg)
	unenrolled, err := agentclient.Dial(ctx, agentclient.Target{Node: "server-1", Address: "bufnet"}, agentclient.Options{TLS: c.client,
		SnapshotKey: agentclient.OnceKey(func(context.Context) ([]byte, error) { return []byte(id.String()), nil }),
		Dialer:      func(ctx context.Context, _ string) (net.Conn, error) { return bootstrapLis.DialContext(ctx) }})
	if err != nil {
		t.Fatal(err)
	}
	defer unenrolled.Close()
	if _, err := unenrolled.Info(ctx, &agentv1.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = unenrolled.Recover().Preflight(ctx, &agentv1.PreflightRequest{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}})
	refused("preflight, agent not enrolled", err)
	if err == nil || !strings.Contains(err.Error(), "node server-1's agent serves the shared bootstrap certificate: run kubectl dr install to enroll it") {
		t.Errorf("preflight on an agent not enrolled: %v; want the plugin's reason", err)
	}

	req := part("plan-key")
	resp, err := withKey.PrepareRestorePlan(ctx, req)
	if err != nil {
		t.Fatalf("prepare with the key: %v", err)
	}
	if len(req.GetSnapshotIdentity()) != 0 {
		t.Errorf("the caller's request was changed: it holds the key")
	}
	if err := dbsnap.VerifyLocal(resp.GetSnapshotPath(), snap); err != nil {
		t.Errorf("prepared snapshot: %v", err)
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("AGE-SECRET-KEY-")) {
			t.Errorf("%s holds the snapshot key", path)
		}
		return nil
	})
}
