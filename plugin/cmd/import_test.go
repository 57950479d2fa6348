package cmd_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// etcdFiles runs a one-member etcd (the real server, embedded), writes
// keys, and returns what `etcdctl snapshot save` writes (the snapshot
// stream, trailer included) and a copy of the member's member/snap/db
// taken once it stopped.
func etcdFiles(t *testing.T) (snapshot, memberDB string) {
	t.Helper()
	dir := t.TempDir()
	free := func() url.URL {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return url.URL{Scheme: "http", Host: l.Addr().String()}
	}
	peer, client := free(), free()
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
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/registry/configmaps/default/c%d", i), "value"); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snapshot = filepath.Join(dir, "etcdctl-snap.db")
	copyTo(t, snapshot, rc)
	rc.Close()
	cli.Close()
	e.Close()
	in, err := os.Open(filepath.Join(cfg.Dir, "member", "snap", "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	memberDB = filepath.Join(dir, "db")
	copyTo(t, memberDB, in)
	return snapshot, memberDB
}

func copyTo(t *testing.T, path string, r io.Reader) {
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

// zipLikeK3s zips the snapshot as k3s's --etcd-snapshot-compress does: one
// deflate entry named after the snapshot, in <entry>.zip.
func zipLikeK3s(t *testing.T, snapshot, entry string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), entry+".zip")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: entry, Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// storeObjects lists every object under the cluster's prefix.
func (e *env) storeObjects() []string {
	e.t.Helper()
	objs, err := e.store.List(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// An etcdctl file, a k3s .zip and a member's db (with --no-hash) come into
// the catalog encrypted, are listed as imported, and download as the
// etcdctl-format file they were verified as.
func TestEtcdSnapshotImportEachKindOfFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.snapshotKey = id
	snap, memberDB := etcdFiles(t)
	zipped := zipLikeK3s(t, snap, "etcd-snapshot-server-1-1795285773")
	out := t.TempDir()

	r := e.run("etcd", "snapshot", "import", snap)
	if r.code != 0 || !strings.Contains(r.stdout, "imported etcdctl as etcdctl-snap.db (node imported") {
		t.Fatalf("import of an etcdctl file:\n%s", r)
	}
	r = e.run("etcd", "snapshot", "download", "etcdctl-snap.db", "--to", filepath.Join(out, "a"))
	if r.code != 0 || !bytes.Equal(fileBytes(t, filepath.Join(out, "a")), fileBytes(t, snap)) {
		t.Errorf("download of the imported etcdctl file: not its bytes\n%s", r)
	}

	r = e.run("etcd", "snapshot", "import", zipped, "--node", "server-1")
	if r.code != 0 || !strings.Contains(r.stdout, "imported k3s-zip as etcd-snapshot-server-1-1795285773 (node server-1") {
		t.Fatalf("import of a k3s .zip:\n%s", r)
	}
	r = e.run("etcd", "snapshot", "download", "etcd-snapshot-server-1-1795285773", "--to", filepath.Join(out, "b"))
	if r.code != 0 || !bytes.Equal(fileBytes(t, filepath.Join(out, "b")), fileBytes(t, snap)) {
		t.Errorf("download of the imported .zip: not the snapshot inside it\n%s", r)
	}

	r = e.run("etcd", "snapshot", "import", memberDB, "--name", "member-copy")
	if r.code != 1 || !strings.Contains(r.stderr, "import refused, nothing was uploaded") || !strings.Contains(r.stderr, "no sha256 trailer") || !strings.Contains(r.stderr, "give --no-hash") {
		t.Errorf("a member's db without --no-hash: want it refused\n%s", r)
	}
	r = e.run("etcd", "snapshot", "import", memberDB, "--name", "member-copy", "--no-hash")
	if r.code != 0 || !strings.Contains(r.stdout, "imported bolt-db as member-copy") {
		t.Fatalf("a member's db with --no-hash:\n%s", r)
	}
	r = e.run("etcd", "snapshot", "download", "member-copy", "--to", filepath.Join(out, "c"))
	db := fileBytes(t, memberDB)
	sum := sha256.Sum256(db)
	if r.code != 0 || !bytes.Equal(fileBytes(t, filepath.Join(out, "c")), append(db, sum[:]...)) {
		t.Errorf("download of the imported member db: want the db and etcd's trailer\n%s", r)
	}

	r = e.run("etcd", "snapshot", "ls")
	rs := rows(t, r.stdout)
	for _, name := range []string{"etcdctl-snap.db", "etcd-snapshot-server-1-1795285773", "member-copy"} {
		if got := rs[name]; len(got) < 10 || got[len(got)-3] != "yes" || got[len(got)-1] != "imported" {
			t.Errorf("ls row of %s: %v, want encrypted and origin imported\n%s", name, got, r)
		}
	}

	r = e.run("etcd", "snapshot", "import", snap)
	if r.code != 1 || !strings.Contains(r.stderr, "is in the store already") || !strings.Contains(r.stderr, "give --name another name") {
		t.Errorf("a second import under the same name: want it refused\n%s", r)
	}
}

// A truncated or damaged file is refused with what happened and what to
// do, and nothing reaches the store.
func TestEtcdSnapshotImportRefusesADamagedFileAndUploadsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.snapshotKey = id
	snap, _ := etcdFiles(t)
	data := fileBytes(t, snap)
	dir := t.TempDir()
	cutAtPage := filepath.Join(dir, "cut-at-page.db")
	os.WriteFile(cutAtPage, data[:len(data)-4096], 0o600)
	cut := filepath.Join(dir, "cut.db")
	os.WriteFile(cut, data[:len(data)-100], 0o600)
	zipped := fileBytes(t, zipLikeK3s(t, snap, "s-server-1-1"))
	cutZip := filepath.Join(dir, "s-server-1-1.zip")
	os.WriteFile(cutZip, zipped[:len(zipped)-200], 0o600)

	for file, says := range map[string]string{
		cutAtPage: "the file is truncated or damaged (copy it again)",
		cut:       "no sha256 trailer",
		cutZip:    "a truncated .zip?",
	} {
		r := e.run("etcd", "snapshot", "import", file)
		if r.code != 1 || !strings.Contains(r.stderr, "import refused, nothing was uploaded") || !strings.Contains(r.stderr, says) {
			t.Errorf("import of %s: want it refused saying %q\n%s", filepath.Base(file), says, r)
		}
	}
	if objs := e.storeObjects(); len(objs) != 0 {
		t.Errorf("the store holds %v after refused imports", objs)
	}
}

// k3s's own snapshots on a server (a .zip and a plain one, beside a .part
// copy being written) are listed by ls --all as k3s-local, never by plain
// ls; import NAME has that server's agent verify and upload one, encrypted
// to the agent's snapshot key, after which it is listed once, as imported.
// A truncated one is refused and nothing reaches the store.
func TestEtcdSnapshotLsAllAndImportOfK3sLocalSnapshots(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.snapshotKey = id
	keyFile := filepath.Join(t.TempDir(), "snapshot.key")
	os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600)
	dataDir := t.TempDir()
	snapDir := filepath.Join(dataDir, "server", "db", "snapshots")
	os.MkdirAll(snapDir, 0o700)
	snap, _ := etcdFiles(t)
	data := fileBytes(t, snap)
	zipped := fileBytes(t, zipLikeK3s(t, snap, "etcd-snapshot-server-1-1795285773"))
	os.WriteFile(filepath.Join(snapDir, "etcd-snapshot-server-1-1795285773.zip"), zipped, 0o600)
	os.WriteFile(filepath.Join(snapDir, "nightly-server-1-1795280000"), data, 0o600)
	os.WriteFile(filepath.Join(snapDir, "cut-server-1-1795270000"), data[:len(data)-4096], 0o600)
	os.WriteFile(filepath.Join(snapDir, "on-demand-server-1-1795290000.1a2b3c.part"), data[:100], 0o600)
	e.agent("server-1", func(c *agentconfig.Config) {
		c.DataDir = dataDir
		c.Etcd.SnapshotKeyFile = keyFile
	})

	r := e.run("etcd", "snapshot", "ls")
	if r.code != 0 || strings.Contains(r.stdout, "server-1-179") {
		t.Errorf("plain ls lists k3s's snapshots\n%s", r)
	}
	r = e.run("etcd", "snapshot", "ls", "--all")
	rs := rows(t, r.stdout)
	for _, name := range []string{"etcd-snapshot-server-1-1795285773.zip", "nightly-server-1-1795280000", "cut-server-1-1795270000"} {
		if got := rs[name]; len(got) < 9 || got[1] != "server-1" || got[len(got)-1] != "k3s-local" || got[len(got)-3] != "local" {
			t.Errorf("ls --all row of %s: %v, want server-1, local, origin k3s-local\n%s", name, got, r)
		}
	}
	if strings.Contains(r.stdout, ".part") {
		t.Errorf("ls --all lists a .part copy\n%s", r)
	}

	r = e.run("etcd", "snapshot", "import", "cut-server-1-1795270000")
	if r.code != 1 || !strings.Contains(r.stderr, "import refused, nothing was uploaded") || !strings.Contains(r.stderr, "truncated or damaged") {
		t.Errorf("import of a truncated k3s snapshot: want it refused\n%s", r)
	}
	if objs := e.storeObjects(); len(objs) != 0 {
		t.Errorf("the store holds %v after a refused import", objs)
	}
	r = e.run("etcd", "snapshot", "import", "etcd-snapshot-server-1-1795285773.zip")
	if r.code != 0 || !strings.Contains(r.stdout, "imported k3s snapshot etcd-snapshot-server-1-1795285773.zip as etcd-snapshot-server-1-1795285773 (node server-1") {
		t.Fatalf("import NAME:\n%s", r)
	}
	r = e.run("etcd", "snapshot", "download", "etcd-snapshot-server-1-1795285773", "--to", filepath.Join(t.TempDir(), "x"))
	if r.code != 0 || !strings.Contains(r.stderr, "verified") {
		t.Errorf("download of the imported k3s snapshot\n%s", r)
	}
	r = e.run("etcd", "snapshot", "ls", "--all")
	rs = rows(t, r.stdout)
	if got := rs["etcd-snapshot-server-1-1795285773"]; len(got) < 9 || got[len(got)-1] != "imported" || got[len(got)-3] != "yes" {
		t.Errorf("the imported snapshot's row: %v\n%s", got, r)
	}
	if _, ok := rs["etcd-snapshot-server-1-1795285773.zip"]; ok {
		t.Errorf("the imported k3s snapshot is still listed as k3s-local\n%s", r)
	}
	r = e.run("etcd", "snapshot", "import", "no-such-snapshot")
	if r.code != 1 || !strings.Contains(r.stderr, "no such file here, and neither a server nor k3s's S3 has a k3s snapshot of that name") {
		t.Errorf("import of an unknown NAME\n%s", r)
	}
}
