package restorelab

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// A volume's files that fail to restore during a recovery onto new hosts
// (the restic pack holding them is gone from the store): k3s is started
// on no server, so no pod starts on a volume that is not back. The
// recovery exits 1 naming the files part and how to resume it; every
// server's plan says the datastore is in place and k3s was not started;
// the node's file is what it was (nothing lost). Then the operator does
// what it says: the pack back, `kubectl dr restore SET --node N`, k3s
// started on the reset server and then on the others: the cluster is
// back, with the file's backed-up bytes.
func TestRecoverFailedFilesPartLeavesK3sNotStarted(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	ns := "recover-fail"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "kept", "--from-literal=v=1")
	filesNode := theLab.State.Nodes[1]
	file := filepath.Join(theLab.DataDir(filesNode), "storage", "recover-fail", "blob.bin")
	want := make([]byte, 1<<20)
	rand.Read(want)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(file)) })

	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	packs := func() map[string]minio.ObjectInfo {
		out := map[string]minio.ObjectInfo{}
		prefix := "lab/" + theLab.State.ClusterID + "/restic/data/"
		for obj := range mc.ListObjects(t.Context(), theLab.State.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			out[obj.Key] = obj
		}
		return out
	}
	before := packs()
	set := "recover-fail"
	if r := kubectlDR(t, "backup", "create", set); r.Code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// The largest new pack holds the file's data (random: not deduplicated).
	var pack minio.ObjectInfo
	for key, obj := range packs() {
		if _, ok := before[key]; !ok && obj.Size > pack.Size {
			pack = obj
		}
	}
	if pack.Size < int64(len(want))/2 {
		t.Fatalf("no new pack holding the file's data (largest new: %q, %d bytes)", pack.Key, pack.Size)
	}
	// The node's file changes after the backup: a failed restore must
	// leave it as it is.
	now := []byte("changed after the backup\n")
	if err := os.WriteFile(file, now, 0o644); err != nil {
		t.Fatal(err)
	}

	// The old hosts are gone: every server's etcd data, token and
	// encryption config; the API server stopped.
	if err := theLab.StopProcess("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	for _, n := range theLab.EtcdNodes() {
		if err := theLab.StopProcess("etcd-" + n); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{"server/db/etcd", "server/token", "server/cred/encryption-config.json"} {
			if err := os.RemoveAll(filepath.Join(theLab.DataDir(n), rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Whatever happens below, the lab ends with its etcd members and API
	// server running, for the tests after this one.
	t.Cleanup(func() {
		if err := theLab.Restart(context.Background()); err != nil {
			t.Errorf("restart the lab: %v", err)
		}
	})

	// The pack goes missing from the store (kept here, put back below).
	obj, err := mc.GetObject(t.Context(), theLab.State.Bucket, pack.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	packData, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	putPack := func() error {
		_, err := mc.PutObject(context.Background(), theLab.State.Bucket, pack.Key, bytes.NewReader(packData), int64(len(packData)), minio.PutObjectOptions{})
		return err
	}
	t.Cleanup(func() {
		if err := putPack(); err != nil {
			t.Errorf("put pack %s back: %v", pack.Key, err)
		}
	})
	if err := mc.RemoveObject(t.Context(), theLab.State.Bucket, pack.Key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	reset := theLab.EtcdNodes()[0]
	since := time.Now()
	r := directDR(t, "recover", "--backup", set, "--yes", "--node", reset, "--skip-layer", "postgres", "--skip-layer", "bucket")
	t.Logf("recover --backup %s --yes:\n%s\n%s", set, r.Stderr, r.Stdout)
	if r.Code != 1 {
		t.Errorf("exit %d, want 1", r.Code)
	}
	packID := filepath.Base(pack.Key)
	for _, want := range []string{
		// The plugin says k3s is held back, and why.
		"k3s is not started: files ",
		"(node " + filesNode + ") failed; restore it, then start k3s",
		// The failed part names the pack and how to resume it; the
		// datastore's is not a failure: it is restored, k3s held.
		"the recovery stopped: 1 part(s) failed",
		packID[:10],
		"to resume: kubectl dr restore " + set + " --node " + filesNode,
		"then: the datastore is restored and in place on every server",
		"start k3s on " + reset + " and then on the others",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !timelineRow(r.Stdout, "files", "FAILED") || !timelineRow(r.Stdout, "etcd", "HELD: restored and in place, k3s not started") {
		t.Errorf("the timeline has no failed files row and held etcd row")
	}
	if strings.Contains(r.Stdout, "RTO ") || strings.Contains(r.Stdout, "api-server") {
		t.Errorf("a failed recovery prints an RTO or waited for the API server")
	}

	// k3s started nowhere; the node's file is as it was.
	actions, err := theLab.HostActions()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		if a.Verb == "start" && !a.At.Before(since) {
			t.Errorf("k3s started on %s at %s although the files part failed", a.Name, a.At.Format(time.RFC3339Nano))
		}
	}
	for _, p := range append([]string{"kube-apiserver"}, prefixed("etcd-", theLab.EtcdNodes())...) {
		if slices.Contains(theLab.Running(), p) {
			t.Errorf("%s runs after the failed recovery", p)
		}
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, now) {
		t.Errorf("%s after the failed restore: %q (%v), want it as it was: %q", file, got, err, now)
	}
	// The datastore is in place on the reset server.
	if _, err := os.Stat(filepath.Join(theLab.DataDir(reset), "server", "db", "etcd", "member")); err != nil {
		t.Errorf("reset server %s: the restored datastore is not in place: %v", reset, err)
	}
	st := labtest.Run(t, theLab, time.Minute, theLab.Bin.KubectlDR, theLab.Env(), "etcd", "restore", "--status")
	t.Logf("etcd restore --status:\n%s\n%s", st.Stdout, st.Stderr)
	for _, n := range theLab.EtcdNodes() {
		if !strings.Contains(st.Stdout, "node "+n+": plan restore-") {
			t.Errorf("--status has no plan for %s", n)
		}
	}
	for _, want := range []string{
		"k3s was not started, so no pod starts on volumes that are not back: restore what failed, then start k3s",
		"there is no data dir at ",
		"once the other layers are restored and the reset server runs, start k3s",
	} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("--status lacks %q", want)
		}
	}

	// The operator's way back: the pack back, the files restored, k3s
	// started on the reset server, then on the others.
	if err := putPack(); err != nil {
		t.Fatal(err)
	}
	if rr := directDR(t, "restore", set, "--node", filesNode, "--yes"); rr.Code != 0 {
		t.Fatalf("restore %s --node %s: exit %d\n%s\n%s", set, filesNode, rr.Code, rr.Stdout, rr.Stderr)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s after the restore: %d bytes (%v), want the %d backed up", file, len(got), err, len(want))
	}
	for _, n := range append([]string{reset}, theLab.EtcdNodes()[1:]...) {
		cmd := exec.CommandContext(t.Context(), theLab.State.LabBin, "start", "--dir", theLab.Dir, "--root", theLab.Root, "etcd-"+n)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("start k3s on %s: %v\n%s", n, err, out)
		}
		// As an operator would: the next server once this one is healthy.
		waitEtcdHealthy(t, n)
	}
	labtest.WaitConfigMaps(t, theLab, ns, "kept")
	oneHealthyCluster(t)
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// timelineRow reports whether a line of out starts with layer and holds
// result.
func timelineRow(out, layer, result string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == layer && strings.Contains(line, result) {
			return true
		}
	}
	return false
}

// waitEtcdHealthy waits up to two minutes for node's etcd member to be
// healthy.
func waitEtcdHealthy(t *testing.T, node string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := etcdmember.Status(t.Context(), theLab.EtcdClient(node))
		if st.Healthy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd on %s not healthy 2m after k3s started there: %v", node, st.Err)
		}
		time.Sleep(time.Second)
	}
}
