package restoreplan

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
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
func TestBuildAndSwapDataDir(t *testing.T) {
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
	snap := snapshotOf(t, snapPath)
	staging := StagingDir(dataDir)
	if _, err := BuildFromFile(bad, snap, m, staging, "plan-1"); !errors.Is(err, dbsnap.ErrChecksum) || exists(staging) {
		t.Fatalf("build from a damaged snapshot: err %v, staging left %v; want a checksum error and nothing left", err, exists(staging))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "snap", "db")); err != nil {
		t.Fatalf("data dir touched by a refused restore: %v", err)
	}

	built, err := BuildFromFile(snapPath, snap, m, staging, "plan-1")
	if err != nil {
		t.Fatal(err)
	}
	if built.Revision <= liveRev {
		t.Errorf("built at revision %d, want past the live %d", built.Revision, liveRev)
	}
	aside := dataDir + ".aside-test"
	if err := SwapDataDir(staging, dataDir, aside); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "snap", "db")); err != nil {
		t.Errorf("previous data dir not kept at %s: %v", aside, err)
	}
	// Run again (an agent restarted mid-step), the swap is already done.
	if err := SwapDataDir(staging, dataDir, aside); err != nil {
		t.Errorf("swap run a second time: %v", err)
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
	if got.Header.Revision <= liveRev || got.Header.Revision != built.Revision {
		t.Errorf("revision after restore %d, want the built %d, past %d (bumped, so watchers relist)", got.Header.Revision, built.Revision, liveRev)
	}
}

func snapshotOf(t *testing.T, path string) *dbsnap.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &dbsnap.Snapshot{Name: filepath.Base(path), SHA256: fmt.Sprintf("%x", sha256.Sum256(data)), Size: int64(len(data))}
}

// The data dir built for a member of a three-member cluster holds what
// etcdutl's restore writes for it: the same database, bucket by bucket,
// the same WAL and the same raft snapshot.
func TestBuildMatchesEtcdutl(t *testing.T) {
	dir := t.TempDir()
	peer, client := freeURL(t), freeURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, cli := startEtcd(t, filepath.Join(dir, "live"), peer, client)
	for i := range 50 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/registry/configmaps/a/cm-%d", i%7), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "/registry/configmaps/a/cm-3"); err != nil {
		t.Fatal(err)
	}
	snapPath := filepath.Join(dir, "snap.db")
	if _, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), clientv3.Config{Endpoints: []string{client.String()}}, snapPath); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	e.Close()

	cluster := "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380"
	m := Member{Name: "m2", PeerURLs: []string{"http://10.0.0.2:2380"}, InitialCluster: cluster, InitialClusterToken: "restore-1", RevisionBump: KubernetesRevisionBump}
	ours := filepath.Join(dir, "ours")
	if _, err := BuildFromFile(snapPath, snapshotOf(t, snapPath), m, ours, "restore-1"); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "etcdutl")
	if err := etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath: snapPath, Name: m.Name, OutputDataDir: theirs, PeerURLs: m.PeerURLs,
		InitialCluster: cluster, InitialClusterToken: m.InitialClusterToken,
		RevisionBump: m.RevisionBump, MarkCompacted: true,
	}); err != nil {
		t.Fatal(err)
	}

	a, b := buckets(t, filepath.Join(ours, "member", "snap", "db")), buckets(t, filepath.Join(theirs, "member", "snap", "db"))
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		for name := range b {
			if !reflect.DeepEqual(a[name], b[name]) {
				t.Errorf("bucket %s: ours %d entries %q\netcdutl's %d entries %q", name, len(a[name]), a[name], len(b[name]), b[name])
			}
		}
		t.Errorf("buckets: ours %d, etcdutl's %d", len(a), len(b))
	}
	walA, walB := readWAL(t, ours), readWAL(t, theirs)
	if !reflect.DeepEqual(walA, walB) {
		t.Errorf("WAL: ours %+v\netcdutl's %+v", walA, walB)
	}
	snapA, errA := snap.New(zap.NewNop(), filepath.Join(ours, "member", "snap")).Load()
	snapB, errB := snap.New(zap.NewNop(), filepath.Join(theirs, "member", "snap")).Load()
	if errA != nil || errB != nil {
		t.Fatalf("raft snapshot: ours %v, etcdutl's %v", errA, errB)
	}
	// The v2 store in the raft snapshot lists the members in map order
	// (etcd's too): compare the members it holds.
	if !reflect.DeepEqual(snapA.Metadata, snapB.Metadata) || !reflect.DeepEqual(v2Members(t, snapA.Data), v2Members(t, snapB.Data)) || len(v2Members(t, snapA.Data)) != 3 {
		t.Errorf("raft snapshot: ours %+v %v\netcdutl's %+v %v", snapA.Metadata, v2Members(t, snapA.Data), snapB.Metadata, v2Members(t, snapB.Data))
	}
}

// v2Members reads member id → raft attributes from the v2 store a raft
// snapshot carries.
func v2Members(t *testing.T, data []byte) map[string]string {
	t.Helper()
	type node struct {
		Value    string
		Children map[string]*node
	}
	var st struct{ Root node }
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if n := st.Root.Children["0"]; n != nil && n.Children["members"] != nil {
		for id, m := range n.Children["members"].Children {
			if a := m.Children["raftAttributes"]; a != nil {
				out[id] = a.Value
			}
		}
	}
	return out
}

// buckets reads every key and value of a database, bucket by bucket.
func buckets(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			kv := map[string]string{}
			out[string(name)] = kv
			return b.ForEach(func(k, v []byte) error {
				kv[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type walContents struct {
	Metadata []byte
	State    raftpb.HardState
	Entries  []raftpb.Entry
}

func readWAL(t *testing.T, dataDir string) walContents {
	t.Helper()
	w, err := wal.OpenForRead(zap.NewNop(), filepath.Join(dataDir, "member", "wal"), walpb.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	md, st, ents, err := w.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return walContents{md, st, ents}
}

// A restore of an older snapshot after another restore: the live revision
// is far past the snapshot's (the first restore bumped it), and the member
// built for the second starts past the live one, not past the snapshot's,
// so the revision clients saw never goes back.
func TestBuildStartsPastTheRevisionFloor(t *testing.T) {
	dir := t.TempDir()
	peer, client := freeURL(t), freeURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, cli := startEtcd(t, filepath.Join(dir, "live"), peer, client)
	if _, err := cli.Put(ctx, "/registry/configmaps/a/cm", "v"); err != nil {
		t.Fatal(err)
	}
	snapPath := filepath.Join(dir, "snap.db")
	if _, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), clientv3.Config{Endpoints: []string{client.String()}}, snapPath); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	e.Close()
	snap := snapshotOf(t, snapPath)
	live := int64(KubernetesRevisionBump) + 500 // after a first restore
	m := Member{Name: "m1", PeerURLs: []string{peer.String()}, InitialCluster: "m1=" + peer.String(),
		InitialClusterToken: "restore-2", RevisionBump: KubernetesRevisionBump, RevisionFloor: live}
	built, err := BuildFromFile(snapPath, snap, m, filepath.Join(dir, "floor"), "restore-2")
	if err != nil {
		t.Fatal(err)
	}
	if want := live + int64(KubernetesRevisionBump); built.Revision != want {
		t.Errorf("built at revision %d, want %d: past the live revision %d by the bump", built.Revision, want, live)
	}
	// Below the snapshot's revision the floor changes nothing.
	m.RevisionFloor = 1
	low, err := BuildFromFile(snapPath, snap, m, filepath.Join(dir, "low"), "restore-3")
	if err != nil {
		t.Fatal(err)
	}
	if low.Revision >= live || low.Revision <= int64(KubernetesRevisionBump) {
		t.Errorf("built at revision %d with a floor under the snapshot's: want the snapshot's revision plus the bump", low.Revision)
	}
}
