package kvsnap

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
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

// realSnapshot runs a one-member etcd (the real server, embedded), lets
// write change it, and saves a snapshot the way the agent does
// (Maintenance.Snapshot, trailer included).
func realSnapshot(t *testing.T, write func(ctx context.Context, cli *clientv3.Client)) string {
	t.Helper()
	dir := t.TempDir()
	peer, client := freeURL(t), freeURL(t)
	cfg := embed.NewConfig()
	cfg.Name = "m1"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	write(ctx, cli)
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(dir, "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Each yields the newest value of every live key under the prefix, in key
// order: overwritten keys once, deleted keys not at all, compacted history
// irrelevant.
func TestEachYieldsNewestLiveKeys(t *testing.T) {
	var lastRev int64
	path := realSnapshot(t, func(ctx context.Context, cli *clientv3.Client) {
		must(cli.Put(ctx, "/registry/configmaps/a/kept", "v1"))
		must(cli.Put(ctx, "/registry/configmaps/a/changed", "old"))
		must(cli.Put(ctx, "/registry/configmaps/a/gone", "v1"))
		must(cli.Put(ctx, "/other/key", "x"))
		r := must(cli.Put(ctx, "/registry/configmaps/a/changed", "new"))
		must(cli.Compact(ctx, r.Header.Revision))
		must(cli.Delete(ctx, "/registry/configmaps/a/gone"))
		must(cli.Put(ctx, "/registry/configmaps/a/recreated", "1"))
		must(cli.Delete(ctx, "/registry/configmaps/a/recreated"))
		lastRev = must(cli.Put(ctx, "/registry/configmaps/a/recreated", "2")).Header.Revision
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	rev, err := s.Each("/registry/", func(kv KeyValue) error {
		got = append(got, fmt.Sprintf("%s=%s", kv.Key, kv.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/registry/configmaps/a/changed=new",
		"/registry/configmaps/a/kept=v1",
		"/registry/configmaps/a/recreated=2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if rev != lastRev {
		t.Errorf("revision %d, want %d", rev, lastRev)
	}
}

func TestEachStopsAtTheCallbacksError(t *testing.T) {
	path := realSnapshot(t, func(ctx context.Context, cli *clientv3.Client) {
		must(cli.Put(ctx, "/a", "1"))
		must(cli.Put(ctx, "/b", "2"))
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := fmt.Errorf("stop")
	n := 0
	_, err = s.Each("/", func(KeyValue) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("Each = %v after %d keys, want the callback's error after 1", err, n)
	}
}

func TestOpenRefusesWhatIsNotASnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(path, []byte("not a bolt file, just text long enough to be read"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		_, err = s.Each("", func(KeyValue) error { return nil })
		s.Close()
		if err == nil {
			t.Fatal("a text file read as a snapshot")
		}
	}
}

// Large values span several pages of the map, which Each drops once a
// value is copied out: every value reads back whole, again and again.
func TestLargeValuesReadBackWholeEveryTime(t *testing.T) {
	want := map[string]string{}
	path := realSnapshot(t, func(ctx context.Context, cli *clientv3.Client) {
		for i := range 20 {
			k := fmt.Sprintf("/registry/configmaps/a/cm-%02d", i)
			v := strings.Repeat(fmt.Sprintf("%02d-value;", i), 3000+i*1000)
			want[k] = v
			must(cli.Put(ctx, k, v))
		}
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pass := range 3 {
		n := 0
		if _, err := s.Each("/registry/", func(kv KeyValue) error {
			n++
			if string(kv.Value) != want[string(kv.Key)] {
				t.Errorf("pass %d: %s read back %d bytes, want %d, or different bytes", pass, kv.Key, len(kv.Value), len(want[string(kv.Key)]))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != len(want) {
			t.Errorf("pass %d: %d keys, want %d", pass, n, len(want))
		}
	}
}

// A data dir etcdutl restored with --bump-revision and --mark-compacted
// (as the etcd flavour's restore builds it, and what the next snapshot of
// that cluster holds) marks the bumped revision with an empty entry: the
// reader yields the same keys and the bumped revision, not an error.
func TestEachReadsARevisionBumpedRestore(t *testing.T) {
	path := realSnapshot(t, func(ctx context.Context, cli *clientv3.Client) {
		must(cli.Put(ctx, "/registry/configmaps/a/kept", "v1"))
	})
	out := filepath.Join(t.TempDir(), "restored")
	const bump = 1_000_000_000
	if err := etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath: path, Name: "m1", OutputDataDir: out, PeerURLs: []string{"http://127.0.0.1:2380"},
		InitialCluster: "m1=http://127.0.0.1:2380", InitialClusterToken: "t", RevisionBump: bump, MarkCompacted: true,
	}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(out, "member", "snap", "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	rev, err := s.Each("/registry/", func(kv KeyValue) error {
		got = append(got, fmt.Sprintf("%s=%s", kv.Key, kv.Value))
		return nil
	})
	if err != nil {
		t.Fatalf("read a revision-bumped data dir: %v", err)
	}
	if diff := cmp.Diff([]string{"/registry/configmaps/a/kept=v1"}, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if rev < bump {
		t.Errorf("revision %d, want the bumped one (> %d)", rev, bump)
	}
}
