package etcdrestore

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

// startEtcd runs a one-member etcd (the real server, embedded) on dataDir.
func startEtcd(t *testing.T, dataDir string, peer, client url.URL) (*embed.Etcd, *clientv3.Client) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "m1"
	cfg.Dir = dataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return e, cli
}

// A snapshot restored over a member's data directory brings back exactly
// the snapshot's keys, at a revision past every one the clients saw, and
// the previous data directory is kept aside.
func TestRestoreDataDir(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "member-data")
	peer, client := freeURL(t), freeURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	e, cli := startEtcd(t, dataDir, peer, client)
	for i := range 5 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/registry/configmaps/a/cm-%d", i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	snapPath := filepath.Join(dir, "snap.db")
	if _, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), clientv3.Config{Endpoints: []string{client.String()}}, snapPath); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, "/registry/configmaps/a/after-snapshot", "x")
	if err != nil {
		t.Fatal(err)
	}
	liveRev := resp.Header.Revision
	cli.Close()
	e.Close()

	// A damaged snapshot is refused and the data dir is untouched.
	bad := filepath.Join(dir, "bad.db")
	data, _ := os.ReadFile(snapPath)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m := Member{Name: "m1", DataDir: dataDir, PeerURLs: []string{peer.String()}, InitialCluster: "m1=" + peer.String(),
		InitialClusterToken: "restored", RevisionBump: KubernetesRevisionBump}
	aside := dataDir + ".aside-test"
	if err := RestoreDataDir(bad, m, aside, nil); err == nil || exists(aside) {
		t.Fatalf("restore of a damaged snapshot: err %v, aside dir made %v; want refused", err, exists(aside))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "snap", "db")); err != nil {
		t.Fatalf("data dir touched by a refused restore: %v", err)
	}

	if err := RestoreDataDir(snapPath, m, aside, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "snap", "db")); err != nil {
		t.Errorf("previous data dir not kept at %s: %v", aside, err)
	}

	e, cli = startEtcd(t, dataDir, peer, client)
	defer e.Close()
	defer cli.Close()
	got, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 5 {
		t.Errorf("restored %d keys, want the snapshot's 5 (not the one put after it)", len(got.Kvs))
	}
	if got.Header.Revision <= liveRev {
		t.Errorf("revision after restore %d, want past %d (bumped, so watchers relist)", got.Header.Revision, liveRev)
	}
}
