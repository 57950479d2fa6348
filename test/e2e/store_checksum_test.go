package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// corruptingProxy forwards HTTP to the lab's MinIO and, while armed, flips
// one byte in the body of every large upload: what a bad NIC, a broken
// middlebox or memory fault does to bytes in flight. Lengths and headers
// stay right, so only a checksum of the content notices.
type corruptingProxy struct {
	url     string
	armed   atomic.Bool
	flipped atomic.Int64
}

func newCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptingProxy{url: "http://" + lis.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.armed.Load() && r.Method == http.MethodPut && r.ContentLength > 1<<20 {
			r.Body = &flipAt{r: r.Body, at: 512 << 10, done: &p.flipped}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return p
}

// flipAt inverts the byte at offset at.
type flipAt struct {
	r    io.ReadCloser
	off  int64
	at   int64
	done *atomic.Int64
}

func (f *flipAt) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if f.off <= f.at && f.at < f.off+int64(n) {
		b[f.at-f.off] ^= 0xff
		f.done.Add(1)
	}
	f.off += int64(n)
	return n, err
}

func (f *flipAt) Close() error { return f.r.Close() }

// An upload whose bytes change on the way is not a snapshot: the store
// refuses the body its checksum does not match, the agent keeps the
// snapshot on the node as not uploaded, and nothing in the store lists it
// as good. Once the network is sound the next save uploads both.
func TestEtcdSnapshotCorruptedInFlightIsNotKept(t *testing.T) {
	ctx := context.Background()
	proxy := newCorruptingProxy(t, labEnv(t, "DR_S3_ENDPOINT"))
	env := startExtraAgent(t, "agent-corrupting", "server-1", func(cfg *agentconfig.Config) {
		cfg.Store.Endpoint = proxy.url
	})
	putBlobs(t, "/e2e/corrupt/", 3)

	proxy.armed.Store(true)
	r := kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-1", "--name", "corrupted", "-o", "json")
	if proxy.flipped.Load() == 0 {
		t.Fatalf("the proxy flipped no byte: the test did not test anything (exit %d, %s)", r.code, r.stderr)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "NOT uploaded") || !strings.Contains(strings.ToLower(r.stderr), "checksum") {
		t.Fatalf("save through a corrupting network: exit %d, stderr:\n%s\nwant exit 1, NOT uploaded, naming the checksum", r.code, r.stderr)
	}
	bad := snapshotJSON(t, r)
	// The database grew by megabytes just before this save.
	noProgressOver100(t, r.stderr)
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lab/" + theLab.State.ClusterID + "/etcd/server-1/" + bad.Name
	for _, key := range []string{prefix + ".json", prefix + ".db.zst.age"} {
		if _, err := mc.StatObject(ctx, theLab.State.Bucket, key, minio.StatObjectOptions{}); err == nil {
			t.Errorf("%s is in the store although its bytes were corrupted on the way", key)
		}
	}
	if listed := listNames(t, kubectlDR(t, env, "etcd", "snapshot", "ls", "-o", "json")); listed[bad.Name] != "local" {
		t.Errorf("%s is listed as %q, want local only (listed: %v)", bad.Name, listed[bad.Name], listed)
	}

	proxy.armed.Store(false)
	r = kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-1", "--name", "sound", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save through a sound network: exit %d\n%s", r.code, r.stderr)
	}
	good := snapshotJSON(t, r)
	noProgressOver100(t, r.stderr)
	listed := listNames(t, kubectlDR(t, env, "etcd", "snapshot", "ls", "-o", "json"))
	for _, name := range []string{bad.Name, good.Name} {
		if listed[name] != "store" {
			t.Errorf("%s is %q once the network is sound, want store", name, listed[name])
		}
	}
	// download checks the sha256 the record names.
	if r := kubectlDR(t, env, "etcd", "snapshot", "download", bad.Name, "--to", t.TempDir()+"/snap.db"); r.code != 0 {
		t.Errorf("download %s after its second upload: exit %d\n%s", bad.Name, r.code, r.stderr)
	}
	for _, name := range []string{bad.Name, good.Name} {
		kubectlDR(t, env, "etcd", "snapshot", "rm", name)
	}
}

// noProgressOver100 fails on a progress line past 100%: the size etcd
// reports before a snapshot is an estimate.
func noProgressOver100(t *testing.T, stderr string) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		var ev struct{ Percent float64 }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Percent > 100 {
			t.Errorf("progress over 100%%: %s", line)
		}
	}
}
