package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

func snapshotJSON(t *testing.T, r result) printers.EtcdSnapshot {
	t.Helper()
	var s printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("no snapshot JSON on stdout (%v):\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return s
}

func etcdClient(t *testing.T, node string) *clientv3.Client {
	t.Helper()
	cli, err := theLab.EtcdClient(node).New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// The proof the issue asks for: keys and Kubernetes objects written, a
// snapshot saved through the built binaries, the object downloaded by a
// separate path (minio-go), decrypted, decompressed, restored with etcdutl
// into a fresh etcd, and the same keys read back.
func TestEtcdSnapshotSaveRestoresElsewhere(t *testing.T) {
	ctx := context.Background()
	cli := etcdClient(t, "server-1")
	want := map[string]string{}
	for i := 0; i < 50; i++ {
		k, v := fmt.Sprintf("/e2e/snap/key-%02d", i), fmt.Sprintf("value %d %s", i, strings.Repeat("x", i))
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	runKubectl(t, "create", "namespace", "snap-e2e")
	runKubectl(t, "-n", "snap-e2e", "create", "configmap", "settings", "--from-literal=color=blue")

	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "e2e", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	if !snap.Uploaded || snap.Location != "store" || snap.Encryption != "age" {
		t.Fatalf("snapshot uploaded=%v location=%q encryption=%q, want uploaded to the store, encrypted", snap.Uploaded, snap.Location, snap.Encryption)
	}
	if !strings.HasPrefix(snap.Name, "e2e-"+snap.Node+"-") {
		t.Errorf("name %q is not k3s's <name>-<node>-<unix time>", snap.Name)
	}
	if snap.Revision <= 0 {
		t.Errorf("revision %d", snap.Revision)
	}
	// Saved on the leader by default.
	st := kubectlDR(t, nil, "status", "-o", "json")
	for _, s := range statusJSON(t, st).Items {
		if s.Etcd != nil && s.Etcd.Leader && s.Node != snap.Node {
			t.Errorf("saved on %s, but %s leads etcd", snap.Node, s.Node)
		}
	}

	// The local copy, named the k3s way, byte-identical to what was uploaded.
	local := filepath.Join(theLab.DataDir(snap.Node), "server", "db", "snapshots", snap.Name)
	if got := fileSHA256(t, local); got != snap.SHA256 {
		t.Errorf("local copy %s sha256 %s, metadata says %s", local, got, snap.SHA256)
	}

	// Download by another path and undo age + zstd.
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	key := "lab/" + theLab.State.ClusterID + "/" + snap.StoreKey
	obj, err := mc.GetObject(ctx, theLab.State.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("download %s: %v", key, err)
	}
	if sum := sha256.Sum256(stored); hex.EncodeToString(sum[:]) != snap.StoredSHA256 {
		t.Errorf("stored object sha256 differs from the metadata")
	}
	if bytes.Contains(stored, []byte("value 7 xxxxxxx")) {
		t.Errorf("the stored object contains plaintext keys: not encrypted")
	}
	id, err := dbsnap.LoadIdentity(theLab.SnapshotKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := age.Decrypt(bytes.NewReader(stored), id)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	zr, err := zstd.NewReader(dec)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("decompress: %v", err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != snap.SHA256 || int64(len(raw)) != snap.Snapshot.Size {
		t.Fatalf("downloaded snapshot: %d bytes, want %d with the recorded sha256", len(raw), snap.Snapshot.Size)
	}
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "snapshot.db")
	if err := os.WriteFile(dbFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	scratch := startScratchEtcd(t, dbFile, filepath.Join(dir, "restored"))
	for k, v := range want {
		resp, err := scratch.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != v {
			t.Errorf("restored %s = %v, want %q", k, resp.Kvs, v)
		}
	}
	resp, err := scratch.Get(ctx, "/registry/configmaps/snap-e2e/settings")
	if err != nil || len(resp.Kvs) != 1 || !bytes.Contains(resp.Kvs[0].Value, []byte("blue")) {
		t.Errorf("the ConfigMap created through the API server is not in the restored etcd: %v %v", resp, err)
	}

	// kubectl dr's own download gives the same file (the key from the
	// install's Secret; without it: TestEtcdSnapshotDownloadWithInstallSecrets).
	got := filepath.Join(dir, "downloaded.db")
	if r := kubectlDR(t, nil, "etcd", "snapshot", "download", snap.Name, "--to", got); r.code != 0 {
		t.Fatalf("download: exit %d: %s", r.code, r.stderr)
	}
	if fileSHA256(t, got) != snap.SHA256 {
		t.Errorf("downloaded file differs from the snapshot")
	}
	if r := kubectlDR(t, nil, "etcd", "snapshot", "download", snap.Name, "--to", got); r.code != 1 || !strings.Contains(r.stderr, "exists: nothing is overwritten") {
		t.Errorf("download over an existing file: exit %d, %s", r.code, r.stderr)
	}
	// ls shows it as a good snapshot, describe tells the same story.
	ls := kubectlDR(t, nil, "etcd", "snapshot", "ls")
	row := tableRows(ls.stdout)[snap.Name]
	// NAME NODE AGE SIZE(2 fields) REVISION LOCATION ENCRYPTED(2 fields) ORIGIN
	if len(row) != 10 || row[1] != snap.Node || row[5] != fmt.Sprint(snap.Revision) || row[6] != "store" || strings.Join(row[7:9], " ") != "yes (age)" || row[9] != "dr" {
		t.Errorf("ls row for %s = %v", snap.Name, row)
	}
	d := kubectlDR(t, nil, "etcd", "snapshot", "describe", snap.Name, "-o", "json")
	if got := snapshotJSON(t, d); got.SHA256 != snap.SHA256 || got.Revision != snap.Revision {
		t.Errorf("describe = %+v, want the saved snapshot", got.Snapshot)
	}
}

// startScratchEtcd restores a snapshot file with etcdutl into a new data
// dir and serves it on free loopback ports (plain HTTP, test only).
func startScratchEtcd(t *testing.T, snapshot, dataDir string) *clientv3.Client {
	t.Helper()
	clientPort := freePort(t)
	peerPort := freePort(t)
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	client := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	out, err := exec.Command(theLab.Bin.Etcdutl, "snapshot", "restore", snapshot,
		"--data-dir", dataDir, "--name", "scratch",
		"--initial-cluster", "scratch="+peer, "--initial-advertise-peer-urls", peer).CombinedOutput()
	if err != nil {
		t.Fatalf("etcdutl snapshot restore: %v\n%s", err, out)
	}
	cmd := exec.Command(theLab.Bin.Etcd, "--name", "scratch", "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "scratch="+peer, "--log-level", "error")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return cli
		}
		if time.Now().After(deadline) {
			t.Fatalf("scratch etcd did not answer: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	sum, err := lab.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestEtcdSnapshotSaveRefusesBadInputBeforeRunning(t *testing.T) {
	listed := func() string {
		t.Helper()
		r := kubectlDR(t, nil, "etcd", "snapshot", "ls", "-o", "json")
		if r.code != 0 {
			t.Fatalf("etcd snapshot ls: exit %d\n%s", r.code, r.stderr)
		}
		return r.stdout
	}
	before, beforeListed := localSnapshots(t), listed()
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--name", "a/b"}, 2, `invalid snapshot name "a/b"`},
		{[]string{"--name", ".."}, 2, `invalid snapshot name ".."`},
		{[]string{"--node", "ghost"}, 1, "--node ghost: no agent for that node"},
		{[]string{"--node", "agent-1"}, 1, "--node agent-1: the node runs no etcd member"},
	}
	for _, tt := range tests {
		r := kubectlDR(t, nil, append([]string{"etcd", "snapshot", "save"}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.contains) {
			t.Errorf("save %v: exit %d, stderr %q; want exit %d and %q", tt.args, r.code, r.stderr, tt.code, tt.contains)
		}
	}
	if after := localSnapshots(t); after != before {
		t.Errorf("a refused save left files behind: %d local snapshot files before, %d after", before, after)
	}
	if after := listed(); after != beforeListed {
		t.Errorf("a refused save changed what etcd snapshot ls lists:\nbefore %s\nafter %s", beforeListed, after)
	}
}

func localSnapshots(t *testing.T) int {
	t.Helper()
	n := 0
	for _, node := range theLab.State.Nodes {
		entries, _ := os.ReadDir(filepath.Join(theLab.DataDir(node), "server", "db", "snapshots"))
		n += len(entries)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// With neither flags nor environment, the store settings and the snapshot
// key come from the Secrets `kubectl dr install` created: without the key's
// Secret a download is refused and writes nothing; with it, it succeeds.
func TestEtcdSnapshotDownloadWithInstallSecrets(t *testing.T) {
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "secrets", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save: exit %d: %s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	// The key's Secret goes away for a moment, and comes back with the
	// same key (the lab installed its own, the file in $DR_SNAPSHOT_KEY).
	keyFile := labEnv(t, "DR_SNAPSHOT_KEY")
	runKubectl(t, "-n", "dr-system", "delete", "secret", "dr-snapshot-key")
	restore := func() {
		if r := runBin(t, theLab.Bin.Kubectl, nil, "-n", "dr-system", "get", "secret", "dr-snapshot-key"); r.code == 0 {
			return
		}
		runKubectl(t, "-n", "dr-system", "create", "secret", "generic", "dr-snapshot-key", "--from-file=snapshot.key="+keyFile)
	}
	t.Cleanup(restore)
	out := filepath.Join(t.TempDir(), "snap.db")

	r = kubectlDR(t, nil, "etcd", "snapshot", "download", snap.Name, "--to", out)
	if r.code != 1 || !strings.Contains(r.stderr, "no snapshot key was given") {
		t.Fatalf("download without a key: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed download left %s", out)
	}
	restore()
	r = kubectlDR(t, nil, "etcd", "snapshot", "download", snap.Name, "--to", out)
	if r.code != 0 {
		t.Fatalf("download with the install's Secrets: exit %d: %s", r.code, r.stderr)
	}
	if fileSHA256(t, out) != snap.SHA256 {
		t.Errorf("downloaded file differs from the snapshot")
	}
}
