package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// incompressible is n bytes of AES-CTR keystream: the same bytes for the
// same seed, and nothing a compressor could shrink.
func incompressible(seed byte, n int64) io.Reader {
	block, _ := aes.NewCipher(bytes.Repeat([]byte{seed}, 16))
	s := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	return io.LimitReader(cipher.StreamReader{S: s, R: zeros{}}, n)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// leadOn moves the etcd leadership to node's member.
func leadOn(t *testing.T, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	self := etcdmember.Status(ctx, theLab.EtcdClient(node))
	if self.Err != nil {
		t.Fatal(self.Err)
	}
	if self.Leader() {
		return
	}
	for _, n := range theLab.EtcdNodes() {
		if !etcdmember.Status(ctx, theLab.EtcdClient(n)).Leader() {
			continue
		}
		cli, err := theLab.EtcdClient(n).New()
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.MoveLeader(ctx, self.MemberID); err != nil {
			t.Fatalf("move the etcd leadership from %s to %s: %v", n, node, err)
		}
		return
	}
	t.Fatal("no etcd member leads")
}

// peakRSS is a process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM for pid %d", pid)
	return 0
}

// biggestFile is the size of the largest file under dir.
func biggestFile(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > n {
				n = fi.Size()
			}
		}
		return nil
	})
	return n
}

// A 2 GiB object: the agent running the pass is SIGKILLed mid-copy; the
// store then lists nothing of it (nothing is recorded before its bytes
// verify); the agent comes back, the next pass copies it whole without
// holding it in memory, and it restores byte for byte.
func TestBucketLargeObjectAgentKilledMidCopy(t *testing.T) {
	const size = 2 << 30
	ctx := context.Background()
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("big-kill-%d/2gib.bin", time.Now().UnixNano())
	prefix := strings.Split(key, "/")[0] + "/"
	h := sha256.New()
	if _, err := mc.PutObject(ctx, lab.AppBucket, key, io.TeeReader(incompressible(7, size), h), size, minio.PutObjectOptions{PartSize: 64 << 20}); err != nil {
		t.Fatalf("put the 2 GiB object: %v", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	t.Cleanup(func() { mc.RemoveObject(ctx, lab.AppBucket, key, minio.RemoveObjectOptions{}) })

	// Its own source (prefix) on an agent of its own, acting for the
	// leading member of a node whose agent is a process, so it can be
	// killed; the plugin reaches that agent alone.
	node := theLab.EtcdNodes()[1]
	leadOn(t, node)
	cfg, err := theLab.AgentConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	const source = "big-media"
	cfg.NodeName = "bigcopy"
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.MetricsAddress = "off"
	cfg.Etcd.Schedule = "off"
	cfg.StateDir = t.TempDir()
	cfg.WAL.Sources = nil
	cfg.Restic.Paths = []string{}
	cfg.Buckets.Sources = []agentconfig.BucketSource{{Name: source, Bucket: cfg.Buckets.Sources[0].Bucket, Prefix: prefix, Mode: "0 0 1 1 *"}}
	if err := theLab.StartAgent(ctx, "bigcopy", cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess("bigcopy") })
	// The source goes with the test: left in the store, every later drill
	// and recovery would restore its 2 GiB and judge its RPO, which grows
	// from here on (no agent runs it after this test).
	t.Cleanup(func() { removeBucketSource(t, source) })
	agentDir := filepath.Join(theLab.Dir, "extra-agents", "bigcopy")
	env := []string{"KUBECTL_DR_AGENTS=bigcopy=" + cfg.Listen}

	cmd := exec.Command(theLab.Bin.KubectlDR, "bucket", "backup", source)
	cmd.Env = append(append(os.Environ(), theLab.UserEnv()...), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Mid-copy: the object's bytes are on their way through the agent's
	// state dir.
	for deadline := time.Now().Add(5 * time.Minute); biggestFile(cfg.StateDir) < 256<<20; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pass never got 256 MiB into the object\n%s", out.String())
		}
	}
	if pids := lab.KillWithArg(agentDir); len(pids) == 0 {
		t.Fatal("no bigcopy agent to kill")
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("bucket backup exited 0 with its agent killed mid-copy\n%s", out.String())
	}
	r := kubectlDR(t, nil, "bucket", "ls", source, "-o", "json")
	var ls printers.BucketObjectList
	if r.code == 0 && json.Unmarshal([]byte(r.stdout), &ls) == nil && len(ls.Items) > 0 {
		t.Fatalf("after the kill the store lists %+v: an object recorded before its bytes verified", ls.Items)
	}

	// The agent comes back; the next pass copies the object whole.
	if err := theLab.StartAgent(ctx, "bigcopy", cfg); err != nil {
		t.Fatal(err)
	}
	r = kubectlDR(t, env, "bucket", "backup", source, "-o", "json")
	var pass printers.BucketPass
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pass) != nil {
		t.Fatalf("bucket backup after the restart: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if pass.Copied != 1 || pass.BytesRead != size {
		t.Fatalf("the pass after the restart: %d copied, %d bytes read; want the object, %d bytes", pass.Copied, pass.BytesRead, size)
	}
	pids := lab.PIDsWithArg(agentDir)
	if len(pids) != 1 {
		t.Fatalf("bigcopy agent pids %v", pids)
	}
	peak := peakRSS(t, pids[0])
	t.Logf("the agent's peak RSS over the 2 GiB pass: %d MiB", peak>>20)
	if peak >= size/2 {
		t.Errorf("the agent's peak RSS %d MiB: it held the object in memory", peak>>20)
	}
	if left := biggestFile(cfg.StateDir); left >= 256<<20 {
		t.Errorf("a %d MiB file is left in the agent's state dir after the pass", left>>20)
	}

	scratch := fmt.Sprintf("scratch-big-%d", time.Now().UnixNano())
	if err := mc.MakeBucket(ctx, scratch, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mc.RemoveObject(ctx, scratch, key, minio.RemoveObjectOptions{})
		mc.RemoveBucket(ctx, scratch)
	})
	r = kubectlDR(t, nil, "bucket", "restore", source, "--to", "now", "--target-bucket", scratch, "--yes")
	if r.code != 0 {
		t.Fatalf("bucket restore: exit %d\n%s", r.code, r.stderr)
	}
	obj, err := mc.GetObject(ctx, scratch, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	g := sha256.New()
	n, err := io.Copy(g, obj)
	if err != nil || n != size || hex.EncodeToString(g.Sum(nil)) != want {
		t.Fatalf("restored object: %d bytes (%v), sha256 %x; want %d bytes, %s", n, err, g.Sum(nil), size, want)
	}
}

// removeBucketSource deletes a bucket source's records (its index,
// buckets/SOURCE/); its blobs stay, as other sources may share them, and
// later tests see no such source.
func removeBucketSource(t *testing.T, source string) {
	t.Helper()
	ctx := context.Background()
	store := labStore(t)
	objs, err := store.List(ctx, bucketobj.Dir(source))
	if err != nil {
		t.Errorf("list bucket source %s: %v", source, err)
		return
	}
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			t.Errorf("remove %s: %v", o.Key, err)
		}
	}
}
