package restorelab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// One member's stop command fails (as `systemctl stop` does on a unit it
// may not stop): no member restores. The two members already stopped are
// started again on their own data dirs, the third still runs; every
// member serves a key written after the snapshot, in one cluster, with
// the data dirs it had; the command fails and says so node by node.
func TestEtcdRestoreStopFailsOnOneMember(t *testing.T) {
	snap := labtest.SaveSnapshot(t, theLab, "stop-fails").Name
	key, value := "/dr-test/after-stop-fails-snapshot", "written after the snapshot"
	put(t, "server-1", key, value)
	before := dataDirInodes(t)

	const failing = "server-3"
	cfg, err := theLab.AgentConfig(failing)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Restore.StopCommand = []string{"sh", "-c", "echo 'Failed to stop etcd.service: Access denied' >&2; exit 1"}
	if err := theLab.StopProcess("agent-" + failing); err != nil {
		t.Fatal(err)
	}
	if err := theLab.StartAgent(t.Context(), "agent-"+failing, cfg); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Its agent as the lab configures it again.
		if err := theLab.StopProcess("agent-" + failing); err != nil {
			t.Error(err)
		}
		if err := theLab.Restart(t.Context()); err != nil {
			t.Errorf("restart the agent: %v", err)
		}
	}()

	r := kubectlDR(t, "etcd", "restore", snap, "--yes")
	t.Logf("kubectl dr etcd restore --yes: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	if r.Code == 0 {
		t.Errorf("restore with %s's stop failing: exit 0, want a failure", failing)
	}
	want := []string{
		"node " + failing + ": stop FAILED",
		"Access denied",
		"the member still ran on its data dir from before the restore",
	}
	// The other members may or may not have stopped by the time the
	// failure calls the restore off (their verify and stop race with it):
	// each says which, and one that stopped was started again on its data.
	for _, n := range theLab.EtcdNodes() {
		if n == failing {
			continue
		}
		switch {
		case strings.Contains(r.Stdout, "node "+n+": stopped; rolled back"):
			want = append(want, "started again on its data dir from before the restore")
		case strings.Contains(r.Stdout, "node "+n+": not stopped; rolled back"):
			want = append(want, "nothing was stopped or changed here")
		default:
			t.Errorf("restore's output has no row saying whether %s was stopped and rolled back", n)
		}
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("restore's output lacks %q", w)
		}
	}
	if !strings.Contains(r.Stderr, "every member runs on its data from before the restore; nothing was restored") {
		t.Errorf("restore's error does not say the cluster is as before:\n%s", r.Stderr)
	}

	oneHealthyCluster(t)
	for _, n := range theLab.EtcdNodes() {
		if got := get(t, n, key); got != value {
			t.Errorf("etcd on %s: %s = %q, want %q (written after the snapshot: the member must not be restored)", n, key, got, value)
		}
	}
	if after := dataDirInodes(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("data dirs (inodes) before the restore %v, after %v: want them unchanged", before, after)
	}
}

// put writes key on node's member.
func put(t *testing.T, node, key, value string) {
	t.Helper()
	cli, err := theLab.EtcdClient(node).New()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(t.Context(), key, value); err != nil {
		t.Fatalf("put %s on %s: %v", key, node, err)
	}
}

// get reads key from node's member (a linearizable read: the member is in
// a cluster with quorum).
func get(t *testing.T, node, key string) string {
	t.Helper()
	c := theLab.EtcdClient(node)
	cli, err := c.New()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// A member without quorum never answers: give up after a while.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Errorf("get %s on %s: %v (%v)", key, node, err, etcdmember.Status(t.Context(), c).Err)
		return ""
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// dataDirInodes are the inodes of every member's data dir and its member/.
func dataDirInodes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, n := range theLab.EtcdNodes() {
		dir := filepath.Join(theLab.DataDir(n), "server", "db", "etcd")
		for _, d := range []string{dir, filepath.Join(dir, "member")} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s:%s=%d", n, filepath.Base(d), fi.Sys().(*syscall.Stat_t).Ino))
		}
	}
	return out
}
