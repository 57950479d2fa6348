package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab/faultproxy"
)

// A second agent for server-1 reaches the real MinIO through a proxy that
// breaks on command: the store down, an upload cut off mid-way, and the
// store coming back.
func TestEtcdSnapshotSurvivesStoreFaults(t *testing.T) {
	ctx := context.Background()
	proxy, err := faultproxy.New(strings.TrimPrefix(labEnv(t, "DR_S3_ENDPOINT"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	env := startExtraAgent(t, "agent-faulty", "server-1", func(cfg *agentconfig.Config) {
		cfg.Store.Endpoint = proxy.URL()
	})

	// Incompressible data, so the upload is megabytes long.
	putBlobs(t, "/e2e/faults/", 3)

	// 1. Store down: the snapshot is kept on the node, marked not uploaded.
	proxy.SetDown(true)
	r := kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-1", "--name", "store-down", "-o", "json")
	if r.code != 1 || !strings.Contains(r.stderr, "NOT uploaded") || !strings.Contains(r.stderr, proxy.URL()) {
		t.Fatalf("save with the store down: exit %d, stderr:\n%s\nwant exit 1, NOT uploaded, naming the endpoint", r.code, r.stderr)
	}
	down := snapshotJSON(t, r)
	if down.Uploaded || down.LocalPath == "" || fileSHA256(t, down.LocalPath) != down.SHA256 {
		t.Fatalf("store-down snapshot: uploaded %v local %q: want a verified local copy", down.Uploaded, down.LocalPath)
	}

	// 2. Upload cut off after 1 MiB: no metadata, so never listed as good.
	proxy.SetDown(false)
	proxy.CutAfter(1 << 20)
	r = kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-1", "--name", "cut-off", "-o", "json")
	if r.code != 1 || !strings.Contains(r.stderr, "NOT uploaded") {
		t.Fatalf("save with the upload cut off: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	cut := snapshotJSON(t, r)
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lab/" + theLab.State.ClusterID + "/etcd/server-1/"
	for _, name := range []string{down.Name, cut.Name} {
		if _, err := mc.StatObject(ctx, theLab.State.Bucket, prefix+name+".json", minio.StatObjectOptions{}); err == nil {
			t.Errorf("%s has a metadata object although its upload failed", name)
		}
	}
	listed := listNames(t, kubectlDR(t, env, "etcd", "snapshot", "ls", "-o", "json"))
	if listed[down.Name] != "local" || listed[cut.Name] != "local" {
		t.Errorf("ls shows %v; want both failed uploads as local only", listed)
	}

	// 3. Store back: the next save uploads itself and the two left behind.
	proxy.SetDown(false)
	r = kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-1", "--name", "store-back", "-o", "json")
	if r.code != 0 {
		t.Fatalf("save with the store back: exit %d\n%s", r.code, r.stderr)
	}
	listed = listNames(t, kubectlDR(t, env, "etcd", "snapshot", "ls", "-o", "json"))
	for _, name := range []string{down.Name, cut.Name, snapshotJSON(t, r).Name} {
		if listed[name] != "store" {
			t.Errorf("%s is %q after the store came back, want store (listed: %v)", name, listed[name], listed)
		}
	}
	for _, name := range []string{down.Name, cut.Name} {
		if _, err := mc.StatObject(ctx, theLab.State.Bucket, prefix+name+".json", minio.StatObjectOptions{}); err != nil {
			t.Errorf("%s: no metadata object after the retry: %v", name, err)
		}
	}

	// rm removes store objects and the local copy.
	if r := kubectlDR(t, env, "etcd", "snapshot", "rm", down.Name); r.code != 0 {
		t.Fatalf("rm: exit %d: %s", r.code, r.stderr)
	}
	if listed = listNames(t, kubectlDR(t, env, "etcd", "snapshot", "ls", "-o", "json")); listed[down.Name] != "" {
		t.Errorf("%s still listed after rm", down.Name)
	}
	if _, err := mc.StatObject(ctx, theLab.State.Bucket, prefix+down.Name+".db.zst.age", minio.StatObjectOptions{}); err == nil {
		t.Errorf("%s: data object left in the store after rm", down.Name)
	}
	if _, err := os.Stat(down.LocalPath); err == nil {
		t.Errorf("%s: local copy left after rm", down.LocalPath)
	}
	if r := kubectlDR(t, env, "etcd", "snapshot", "rm", "no-such-snapshot"); r.code != 1 || !strings.Contains(r.stderr, "no etcd snapshot named no-such-snapshot: nothing removed") {
		t.Errorf("rm of an unknown name: exit %d, %s", r.code, r.stderr)
	}
}

func TestEtcdSnapshotMissingBucketIsNamed(t *testing.T) {
	env := startExtraAgent(t, "agent-nobucket", "server-2", func(cfg *agentconfig.Config) {
		cfg.Store.URL = "s3://no-such-bucket/x"
	})
	r := kubectlDR(t, env, "etcd", "snapshot", "save", "--node", "server-2", "--name", "nobucket")
	if r.code != 1 || !strings.Contains(r.stderr, `bucket "no-such-bucket" does not exist`) || !strings.Contains(r.stderr, "NOT uploaded") {
		t.Errorf("save into a missing bucket: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func listNames(t *testing.T, r result) map[string]string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("ls: exit %d: %s", r.code, r.stderr)
	}
	var l printers.EtcdSnapshotList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, r.stdout)
	}
	out := map[string]string{}
	for _, s := range l.Items {
		out[s.Name] = s.Location
	}
	return out
}

// startExtraAgent runs one more agent for node, configured like the lab's
// but without schedule or metrics and with its own state dir, changed by
// mutate. It returns the environment that points kubectl dr at it alone.
func startExtraAgent(t *testing.T, name, node string, mutate func(*agentconfig.Config)) []string {
	t.Helper()
	cfg, err := theLab.AgentConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.MetricsAddress = "off"
	cfg.Etcd.Schedule = "off"
	cfg.StateDir = t.TempDir()
	mutate(&cfg)
	if err := theLab.StartAgent(context.Background(), name, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess(name) })
	return []string{"KUBECTL_DR_AGENTS=" + node + "=" + cfg.Listen}
}

// putBlobs writes n MiB of incompressible values under prefix on server-1's
// etcd (so a snapshot's upload is megabytes long), removed after the test.
func putBlobs(t *testing.T, prefix string, n int) {
	t.Helper()
	cli := etcdClient(t, "server-1")
	for i := 0; i < n; i++ {
		v := make([]byte, 1<<20)
		rand.Read(v)
		if _, err := cli.Put(context.Background(), fmt.Sprintf("%sblob-%d", prefix, i), string(v)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { cli.Delete(context.Background(), prefix, clientv3.WithPrefix()) })
}
