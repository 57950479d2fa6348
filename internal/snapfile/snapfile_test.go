package snapfile

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
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

// realEtcd runs a one-member etcd (the real server, embedded), writes
// keys, and returns what etcdctl snapshot save writes (Maintenance.Snapshot,
// trailer included) and a copy of the member's member/snap/db taken after
// it stopped.
func realEtcd(t *testing.T) (snapshot, memberDB string, rev int64) {
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
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 50 {
		resp, err := cli.Put(ctx, fmt.Sprintf("/registry/k%d", i), strings.Repeat("v", 500))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snapshot = filepath.Join(dir, "snap.db")
	writeFrom(t, snapshot, rc)
	rc.Close()
	cli.Close()
	e.Close()
	memberDB = filepath.Join(dir, "db")
	in, err := os.Open(filepath.Join(cfg.Dir, "member", "snap", "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	writeFrom(t, memberDB, in)
	return snapshot, memberDB, rev
}

func writeFrom(t *testing.T, path string, r io.Reader) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// k3sZip zips a snapshot the way k3s's --etcd-snapshot-compress does: one
// deflate entry named after the snapshot.
func k3sZip(t *testing.T, snapshot, entry string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), entry+".zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: entry, Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := io.Copy(w, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func truncated(t *testing.T, path string, cut int64) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cut-"+filepath.Base(path))
	if err := os.WriteFile(out, data[:int64(len(data))-cut], 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func corrupted(t *testing.T, path string, at int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at = len(data) / 2
	}
	data[at] ^= 0xff
	out := filepath.Join(t.TempDir(), "bad-"+filepath.Base(path))
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyRootDamaged copies a member db with the page type of the key bucket's
// root page overwritten: a damage only a walk of the bucket finds.
func keyRootDamaged(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket([]byte("key")).Root())
		return nil
	})
	pageSize := db.Info().PageSize
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A page starts with its id (8 bytes), then its flags (2).
	off := int(root)*pageSize + 8
	data[off], data[off+1] = 0xee, 0xee
	out := filepath.Join(t.TempDir(), "damaged-db")
	if err := os.WriteFile(out, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func noParts(t *testing.T, dir string) {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(parts) > 0 {
		t.Errorf("left behind: %v", parts)
	}
}

func TestVerifyEachKindOfSnapshotFile(t *testing.T) {
	t.Parallel()
	snap, memberDB, rev := realEtcd(t)
	want, err := fileSHA256(snap)
	if err != nil {
		t.Fatal(err)
	}
	zipped := k3sZip(t, snap, "etcd-snapshot-server-1-1795285773")
	tmp := t.TempDir()

	for _, tc := range []struct {
		name, path, kind string
		noHash, temp     bool
	}{
		{"etcdctl snapshot save", snap, KindEtcdctl, false, false},
		{"k3s .zip", zipped, KindK3sZip, false, true},
		{"member/snap/db with --no-hash", memberDB, KindBoltDB, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Verify(tc.path, Options{NoHash: tc.noHash, TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			if f.Kind != tc.kind || f.Revision != rev {
				t.Errorf("kind %s revision %d, want %s at %d", f.Kind, f.Revision, tc.kind, rev)
			}
			// What comes out is an etcdctl file: it verifies as one.
			again, err := checkTrailer(f.Path)
			if err != nil {
				t.Fatalf("the verified file is not in etcdctl's format: %v", err)
			}
			if again.SHA256 != f.SHA256 {
				t.Errorf("sha256 %s, the file hashes to %s", f.SHA256, again.SHA256)
			}
			if tc.kind == KindK3sZip && (f.SHA256 != want || f.EntryName != "etcd-snapshot-server-1-1795285773") {
				t.Errorf("unzipped sha256 %s entry %q, want the original's %s", f.SHA256, f.EntryName, want)
			}
			if (f.Path != tc.path) != tc.temp {
				t.Errorf("path %s", f.Path)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			noParts(t, tmp)
		})
	}
}

func TestVerifyRefusesDamagedFilesAndLeavesNothing(t *testing.T) {
	t.Parallel()
	snap, memberDB, _ := realEtcd(t)
	zipped := k3sZip(t, snap, "s-1")
	tmp := t.TempDir()
	for _, tc := range []struct {
		name, path string
		noHash     bool
		is         error
		says       string
	}{
		{"member db without --no-hash", memberDB, false, ErrNoTrailer, "give --no-hash"},
		{"etcdctl snapshot cut at a page", truncated(t, snap, 4096), false, ErrCorrupt, "truncated or damaged"},
		{"etcdctl snapshot cut anywhere", truncated(t, snap, 100), false, ErrNoTrailer, "truncated etcdctl snapshot"},
		{"one byte changed", corrupted(t, snap, 5000), false, ErrCorrupt, "truncated or damaged"},
		{"truncated .zip", truncated(t, zipped, 1000), false, ErrCorrupt, "truncated .zip"},
		{"damaged .zip", corrupted(t, zipped, -1), false, ErrCorrupt, "unzip"},
		{"damaged member db with --no-hash", keyRootDamaged(t, memberDB), true, ErrCorrupt, "bbolt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Verify(tc.path, Options{NoHash: tc.noHash, TempDir: tmp})
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q, want %v saying %q", err, tc.is, tc.says)
			}
			noParts(t, tmp)
		})
	}
}

func TestVerifyBoundsTheUnzippedSize(t *testing.T) {
	t.Parallel()
	snap, _, _ := realEtcd(t)
	zipped := k3sZip(t, snap, "s-1")
	tmp := t.TempDir()
	_, err := Verify(zipped, Options{TempDir: tmp, MaxUnzipped: 1024})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "over the limit of 1024") {
		t.Errorf("error %v", err)
	}
	noParts(t, tmp)
}
