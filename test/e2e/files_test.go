package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// writeTree fills dir with n small files in nested directories and a few
// large ones, deterministic from seed.
func writeTree(t *testing.T, dir string, n int, large int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%17), fmt.Sprintf("e%d", i%5), fmt.Sprintf("f%05d.txt", i))
		body := make([]byte, 64+rng.IntN(4096))
		for j := range body {
			body[j] = byte('a' + rng.IntN(26))
		}
		writeFile(t, p, body)
	}
	for i := range large {
		body := make([]byte, 6<<20)
		for j := 0; j < len(body); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(body); k++ {
				body[j+k] = byte(v >> (8 * k))
			}
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("large-%d.bin", i)), body)
	}
}

func writeFile(t *testing.T, p string, body []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hashTree maps every regular file under dir to its sha256.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[p] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func describeSet(t *testing.T, name string) printers.BackupSet {
	t.Helper()
	r := kubectlDR(t, nil, "backup", "describe", name, "-o", "json")
	if r.code != 0 {
		t.Fatalf("backup describe %s: exit %d\n%s", name, r.code, r.stderr)
	}
	var s printers.BackupSet
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("backup describe -o json: %v\n%s", err, r.stdout)
	}
	return s
}

func previewJSON(t *testing.T, r result) map[string]printers.RestorePreview {
	t.Helper()
	var l printers.RestorePreviewList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("restore -o json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	out := map[string]printers.RestorePreview{}
	for _, p := range l.Items {
		out[p.Node] = p
	}
	return out
}

// The proof: three nodes with real data (one a PVC directory on the
// Kubernetes node, backed up by the DaemonSet's pod), a backup set, changes
// and deletions, a preview that names exactly those, a restore that brings
// back identical bytes, and the replaced files kept aside.
func TestFilesBackupPreviewRestore(t *testing.T) {
	storage := func(node string) string { return filepath.Join(theLab.DataDir(node), "storage") }
	pvcDir := filepath.Join(storage("server-1"), "pvc-0d7c6c1e-8a4f-4c55-9c1b-6a2f1f0e5b11_shop_data-0")
	roots := map[string]string{
		"server-1": pvcDir,
		"server-2": filepath.Join(storage("server-2"), "plain"),
		"agent-1":  filepath.Join(storage("agent-1"), "www"),
	}
	for i, node := range []string{"server-1", "server-2", "agent-1"} {
		writeTree(t, roots[node], 1200, 2, uint64(i+1))
		t.Cleanup(func() { os.RemoveAll(roots[node]) })
	}
	before := map[string]map[string]string{}
	for node, dir := range roots {
		before[node] = hashTree(t, dir)
	}

	r := kubectlDR(t, nil, "backup", "create", "files-e2e")
	if r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	set := describeSet(t, "files-e2e")
	if set.Phase != "Completed" || set.Etcd == nil || set.Etcd.Snapshot == "" {
		t.Fatalf("set phase %s, etcd %+v; want Completed with an etcd snapshot", set.Phase, set.Etcd)
	}
	for node := range roots {
		p, ok := set.Part(node)
		if !ok || p.SnapshotID == "" {
			t.Fatalf("set has no file snapshot of %s: %+v", node, set.Files)
		}
		if p.Files < int64(len(before[node])) {
			t.Errorf("%s: set records %d files, the node has %d", node, p.Files, len(before[node]))
		}
	}
	if p, _ := set.Part("server-1"); !slices.Contains(p.PVCs, "shop/data-0") {
		t.Errorf("server-1's part names PVCs %v, want shop/data-0", p.PVCs)
	}

	// Change two files, delete two, add one on each node.
	want := map[string]map[string]string{} // node → path → create|replace
	for node, dir := range roots {
		want[node] = map[string]string{}
		var files []string
		for p := range before[node] {
			files = append(files, p)
		}
		slices.Sort(files)
		for _, p := range files[10:12] {
			writeFile(t, p, []byte("changed after the backup\n"))
			want[node][p] = "replace"
		}
		for _, p := range files[20:22] {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			want[node][p] = "create"
		}
		writeFile(t, filepath.Join(dir, "new-after-backup.txt"), []byte("new\n"))
	}

	r = kubectlDR(t, nil, "restore", "files-e2e", "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	previews := previewJSON(t, r)
	for node := range roots {
		p := previews[node]
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Digest) {
			t.Errorf("%s preview digest %q, want a sha256", node, p.Digest)
		}
		got := map[string]string{}
		for _, c := range p.Changes {
			got[c.Path] = c.Action
		}
		if fmt.Sprint(got) != fmt.Sprint(want[node]) {
			t.Errorf("%s preview changes:\n got %v\nwant %v", node, got, want[node])
		}
		if p.NotInBackup.Files != 1 {
			t.Errorf("%s preview: %d files not in the backup, want 1 (new-after-backup.txt)", node, p.NotInBackup.Files)
		}
		if p.Unchanged.Files != int64(len(before[node])-4) {
			t.Errorf("%s preview: %d unchanged, want %d", node, p.Unchanged.Files, len(before[node])-4)
		}
	}
	if p := previews["server-3"]; len(p.Changes) != 0 {
		t.Errorf("server-3 was not touched, yet its preview lists %v", p.Changes)
	}

	// Without --yes, and not on a terminal: the preview, and nothing else.
	r = kubectlDR(t, nil, "restore", "files-e2e")
	if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("restore without --yes: exit %d, stderr %q; want 2 asking for --yes", r.code, r.stderr)
	}
	for node := range roots {
		for p, action := range want[node] {
			if _, err := os.Stat(p); (action == "create") != os.IsNotExist(err) {
				t.Fatalf("restore without --yes changed %s", p)
			}
		}
	}

	r = kubectlDR(t, nil, "restore", "files-e2e", "--yes")
	if r.code != 0 {
		t.Fatalf("restore --yes: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for node, dir := range roots {
		after := hashTree(t, dir)
		for p, sum := range before[node] {
			if after[p] != sum {
				t.Errorf("%s: %s has sha256 %q after the restore, %q before the backup", node, p, after[p], sum)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "new-after-backup.txt")); err != nil {
			t.Errorf("%s: the file made after the backup was not left alone: %v", node, err)
		}
	}
	// The replaced files sit in the moved-aside directory, as they were.
	aside := regexp.MustCompile(`(?m)^(\S+): restored \d+ file\(s\).*the files it replaced are in (\S+)$`).FindAllStringSubmatch(r.stdout, -1)
	if len(aside) != 3 {
		t.Fatalf("want a moved-aside directory for 3 nodes in:\n%s", r.stdout)
	}
	for _, m := range aside {
		node, dir := m[1], m[2]
		for p, action := range want[node] {
			if action != "replace" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil || string(data) != "changed after the backup\n" {
				t.Errorf("%s: replaced file %s not kept aside in %s: %v %q", node, p, dir, err, data)
			}
		}
	}

	// server-1's agent is the DaemonSet's pod: a target outside what it
	// mounts from the node would be restored into its container and lost.
	// Refused, nothing made.
	unmounted := filepath.Join(theLab.NodeRoot("server-1"), "restore-target")
	r = kubectlDR(t, nil, "restore", "files-e2e", "--pvc", "shop/data-0", "--target", unmounted, "--yes")
	if r.code == 0 || !strings.Contains(r.stderr, unmounted+" is not on the node") || !strings.Contains(r.stderr, "kubectl dr config set restic.paths") {
		t.Errorf("restore --target %s (not mounted into the pod): exit %d\n%s\nwant a refusal saying it is not on the node", unmounted, r.code, r.stderr)
	}
	if _, err := os.Stat(unmounted); err == nil {
		t.Errorf("a refused restore made %s", unmounted)
	}

	// One PVC into a scratch directory on the node, under k3s's data dir,
	// which the pod mounts.
	target := filepath.Join(theLab.DataDir("server-1"), "restore-target")
	t.Cleanup(func() { os.RemoveAll(target) })
	r = kubectlDR(t, nil, "restore", "files-e2e", "--pvc", "shop/data-0", "--target", target, "--yes")
	if r.code != 0 {
		t.Fatalf("restore --pvc --target: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	restored := hashTree(t, target)
	for p, sum := range before["server-1"] {
		if restored[filepath.Join(target, p)] != sum {
			t.Fatalf("--target: %s not restored with the backed-up bytes", filepath.Join(target, p))
		}
	}

	// server-2's files onto another node.
	moved := filepath.Join(theLab.NodeRoot("agent-1"), "from-server-2")
	t.Cleanup(func() { os.RemoveAll(moved) })
	r = kubectlDR(t, nil, "restore", "files-e2e", "--node", "server-2", "--to-node", "agent-1", "--path", roots["server-2"], "--target", moved, "--yes")
	if r.code != 0 {
		t.Fatalf("restore --to-node: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	restored = hashTree(t, moved)
	if len(restored) != len(before["server-2"]) {
		t.Errorf("--to-node restored %d files, server-2 had %d", len(restored), len(before["server-2"]))
	}
	for p, sum := range before["server-2"] {
		if restored[filepath.Join(moved, p)] != sum {
			t.Fatalf("--to-node: %s not restored with the backed-up bytes", filepath.Join(moved, p))
		}
	}

	r = kubectlDR(t, nil, "backup", "verify", "files-e2e", "--read-data-subset", "20%")
	if r.code != 0 || !strings.Contains(r.stdout, "backup files-e2e verified") {
		t.Fatalf("backup verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	r = kubectlDR(t, nil, "backup", "rm", "files-e2e")
	if r.code != 0 {
		t.Fatalf("backup rm: exit %d\n%s", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "backup", "ls")
	if regexp.MustCompile(`(?m)^files-e2e\s`).MatchString(r.stdout) {
		t.Errorf("backup ls still lists the removed set:\n%s", r.stdout)
	}
	r = kubectlDR(t, nil, "restore", "files-e2e", "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, "backup set not found") {
		t.Errorf("restore of a removed set: exit %d, %q", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "etcd", "snapshot", "ls")
	if strings.Contains(r.stdout, set.Etcd.Snapshot) {
		t.Errorf("the removed set's etcd snapshot is still listed:\n%s", r.stdout)
	}
}

// extraFilesAgent runs an agent for a node of its own, backing up one
// directory, configured by mutate.
func extraFilesAgent(t *testing.T, name string, mutate func(*agentconfig.Config)) []string {
	t.Helper()
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "hello.txt"), []byte("hello\n"))
	return startExtraAgent(t, name, "agent-1", func(c *agentconfig.Config) {
		c.NodeName = name
		c.Restic.Paths = []string{data}
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		mutate(c)
	})
}

// agentsEnv points kubectl dr at the lab's agents plus the extra one.
func agentsEnv(t *testing.T, env []string, name string) []string {
	addr := strings.TrimPrefix(env[0], "KUBECTL_DR_AGENTS=agent-1=")
	return []string{"KUBECTL_DR_AGENTS=" + labEnv(t, "KUBECTL_DR_AGENTS") + "," + name + "=" + addr}
}

func TestFilesBadInputIsRefusedClearly(t *testing.T) {
	// Make sure the repository exists (the other test may run later).
	if r := kubectlDR(t, nil, "backup", "create", "bad-input-base", "--etcd=false", "--node", "server-2"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s", r.code, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "bad-input-base") })

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing set", []string{"restore", "no-such-backup", "--dry-run"}, 1, "backup set not found"},
		{"bad name", []string{"backup", "create", "Bad_Name"}, 2, "invalid backup name"},
		{"nothing to do", []string{"backup", "create", "--etcd=false", "--files=false", "--buckets=false"}, 2, "nothing to back up"},
		{"bad pvc", []string{"restore", "bad-input-base", "--pvc", "no-slash"}, 2, "NAMESPACE/NAME"},
		{"relative path", []string{"restore", "bad-input-base", "--path", "etc/passwd"}, 2, "must be absolute"},
		{"dotdot path", []string{"restore", "bad-input-base", "--path", filepath.Join(theLab.DataDir("server-2"), "storage") + "/../../../etc"}, 2, `".." is not allowed`},
		{"outside roots", []string{"restore", "bad-input-base", "--node", "server-2", "--path", "/etc", "--dry-run"}, 1, "outside the configured roots"},
		{"unknown node", []string{"backup", "create", "x1", "--node", "no-such-node"}, 2, "no agent for that node"},
		{"node not in set", []string{"restore", "bad-input-base", "--node", "server-3"}, 2, "has no files from that node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kubectlDR(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("kubectl dr %v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		pw := filepath.Join(t.TempDir(), "password")
		writeFile(t, pw, []byte("not-the-password\n"))
		env := agentsEnv(t, extraFilesAgent(t, "wrong-pw", func(c *agentconfig.Config) { c.Restic.PasswordFile = pw }), "wrong-pw")
		r := kubectlDR(t, env, "backup", "create", "wrong-pw-set", "--etcd=false", "--buckets=false", "--node", "wrong-pw")
		t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "wrong-pw-set") })
		if r.code != 1 || !strings.Contains(r.stderr, "wrong restic password") {
			t.Errorf("exit %d, stderr %q; want 1 and the wrong password named", r.code, r.stderr)
		}
	})

	t.Run("not a repository", func(t *testing.T) {
		id := "e2e-not-a-repo"
		mc, err := theLab.MinIOClient()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		junk := "lab/" + id + "/restic/something-else.txt"
		if _, err := mc.PutObject(ctx, theLab.State.Bucket, junk, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mc.RemoveObject(ctx, theLab.State.Bucket, junk, minio.RemoveObjectOptions{}) })
		env := agentsEnv(t, extraFilesAgent(t, "not-repo", func(c *agentconfig.Config) { c.ClusterID = id }), "not-repo")
		r := kubectlDR(t, append(env, "DR_CLUSTER_ID="+id), "backup", "create", "not-repo-set", "--etcd=false", "--buckets=false", "--node", "not-repo")
		if r.code != 1 || !strings.Contains(r.stderr, "not a restic repository") {
			t.Errorf("exit %d, stderr %q; want 1 and 'not a restic repository'", r.code, r.stderr)
		}
		var keys []string
		for obj := range mc.ListObjects(ctx, theLab.State.Bucket, minio.ListObjectsOptions{Prefix: "lab/" + id + "/restic/", Recursive: true}) {
			keys = append(keys, obj.Key)
		}
		if len(keys) != 1 {
			t.Errorf("the agent wrote into a location that is not a repository: %v", keys)
		}
	})

	t.Run("no paths", func(t *testing.T) {
		env := agentsEnv(t, extraFilesAgent(t, "no-paths", func(c *agentconfig.Config) { c.Restic.Paths = []string{"/nonexistent/dr-e2e"} }), "no-paths")
		r := kubectlDR(t, env, "backup", "create", "no-paths-set", "--etcd=false", "--buckets=false", "--node", "no-paths")
		t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "no-paths-set") })
		if r.code != 1 || !strings.Contains(r.stderr, "none of the configured paths exists") {
			t.Errorf("exit %d, stderr %q; want 1 naming the missing paths", r.code, r.stderr)
		}
	})
}

// A node that vanishes mid-backup (its agent and restic SIGKILLed): the
// set is PartiallyFailed naming it, the other node completes, and the next
// backup and an exclusive operation (rm, which prunes) work despite the
// dead restic's stale lock.
func TestFilesNodeVanishesMidBackup(t *testing.T) {
	data := t.TempDir()
	writeTree(t, data, 200, 40, 99) // ~240 MiB: long enough to be cut
	env := startExtraAgent(t, "doomed", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "doomed"
		c.Restic.Paths = []string{data}
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
	})
	env = agentsEnv(t, env, "doomed")

	cmd := exec.Command(theLab.Bin.KubectlDR, "backup", "create", "vanish-set", "--node", "doomed", "--node", "server-2", "-o", "json")
	cmd.Env = append(append(os.Environ(), theLab.Env()...), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "vanish-set") })
	var events bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(stderr, &events))
	for {
		var ev printers.ProgressEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("backup ended before doomed made progress: %v\n%s", err, events.String())
		}
		if ev.Node == "doomed" && ev.Phase == "files" && ev.BytesDone > 0 {
			break
		}
	}
	// The node vanishes: restic first (so its lock stays behind), then
	// the agent.
	if pids := lab.KillWithArg(data); len(pids) == 0 {
		t.Fatal("no restic process backing up the doomed node's data")
	}
	lab.KillWithArg(filepath.Join(theLab.Dir, "extra-agents", "doomed"))
	_, _ = io.Copy(&events, stderr)
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("backup create with a vanished node: exit %d (%v), want 3\n%s", code, err, events.String())
	}
	set := describeSet(t, "vanish-set")
	if set.Phase != "PartiallyFailed" {
		t.Errorf("set phase %s, want PartiallyFailed", set.Phase)
	}
	if p, _ := set.Part("doomed"); p.Error == "" || p.SnapshotID != "" {
		t.Errorf("doomed's part: %+v; want an error and no snapshot", p)
	}
	if p, _ := set.Part("server-2"); p.SnapshotID == "" || p.Error != "" {
		t.Errorf("server-2's part: %+v; want its snapshot", p)
	}

	if r := kubectlDR(t, nil, "backup", "create", "after-vanish", "--etcd=false", "--node", "server-2"); r.code != 0 {
		t.Fatalf("backup after the vanished node: exit %d\n%s", r.code, r.stderr)
	}
	// rm forgets and prunes under restic's exclusive lock: the dead
	// restic's lock is stale and must not block it.
	if r := kubectlDR(t, nil, "backup", "rm", "after-vanish"); r.code != 0 {
		t.Fatalf("backup rm with a stale lock in the repository: exit %d\n%s", r.code, r.stderr)
	}
}

// resticLocks lists the lock objects in the lab cluster's repository.
func resticLocks(t *testing.T) []string {
	t.Helper()
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	prefix := "lab/" + theLab.State.ClusterID + "/restic/locks/"
	for obj := range mc.ListObjects(context.Background(), theLab.State.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// Ctrl-C during a backup: restic is interrupted cleanly (its lock is gone),
// the set is recorded as Failed, the exit code is 130.
func TestFilesBackupInterrupted(t *testing.T) {
	data := t.TempDir()
	writeTree(t, data, 100, 40, 7)
	env := agentsEnv(t, startExtraAgent(t, "ctrl-c", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "ctrl-c"
		c.Restic.Paths = []string{data}
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
	}), "ctrl-c")
	cmd := exec.Command(theLab.Bin.KubectlDR, "backup", "create", "ctrl-c-set", "--etcd=false", "--node", "ctrl-c", "-o", "json")
	cmd.Env = append(append(os.Environ(), theLab.Env()...), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "ctrl-c-set") })
	var events bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(stderr, &events))
	for {
		var ev printers.ProgressEvent
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("backup ended before it made progress: %v\n%s", err, events.String())
		}
		if ev.Node == "ctrl-c" && ev.Phase == "files" && ev.BytesDone > 0 {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&events, stderr)
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("interrupted backup: exit %d, want 130\n%s", code, events.String())
	}
	set := describeSet(t, "ctrl-c-set")
	if set.Phase != "Failed" || set.Error != "interrupted" {
		t.Errorf("interrupted set: phase %s, error %q; want Failed, interrupted", set.Phase, set.Error)
	}
	// restic got SIGINT and removed its lock; it did not linger.
	deadline := time.Now().Add(15 * time.Second)
	for {
		locks, procs := resticLocks(t), lab.ProcessesUnder(data)
		if len(locks) == 0 && len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the interrupt: locks %v, restic processes %v", locks, procs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Scheduled file backups: each tick backs up the node's paths, tagged
// scheduled, then retention keeps the newest keepLast of them and never
// touches a backup set's snapshot.
func TestFilesScheduledBackupsWithRetention(t *testing.T) {
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "counter"), []byte("0"))
	env := agentsEnv(t, startExtraAgent(t, "sched", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "sched"
		c.Restic.Paths = []string{data}
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		c.Restic.Schedule = "*/4 * * * * *"
		c.Restic.Retention = agentconfig.Retention{KeepLast: 2}
	}), "sched")
	if r := kubectlDR(t, env, "backup", "create", "sched-set", "--etcd=false", "--node", "sched"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s", r.code, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "sched-set") })
	set := describeSet(t, "sched-set")
	setSnap, _ := set.Part("sched")

	logged := regexp.MustCompile(`"msg":"scheduled file backup".*"snapshot":"([0-9a-f]+)"`)
	retained := regexp.MustCompile(`"msg":"file retention applied"`)
	var ids []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("%d scheduled backups with retention in 90s, want 4", len(ids))
		}
		writeFile(t, filepath.Join(data, "counter"), []byte(time.Now().String()))
		time.Sleep(time.Second)
		log, _ := os.ReadFile(theLab.LogPath("sched"))
		if len(retained.FindAll(log, -1)) >= 4 {
			break
		}
	}
	theLab.StopProcess("sched")
	log, _ := os.ReadFile(theLab.LogPath("sched"))
	for _, m := range logged.FindAllStringSubmatch(string(log), -1) {
		ids = append(ids, m[1])
	}
	// The newest two as of the last retention, plus any backup made after
	// it (the agent was stopped before its retention ran).
	r := len(retained.FindAll(log, -1))
	snaps := resticSnapshots(t, "--host", "sched")
	var scheduled []string
	hasSet := false
	for _, s := range snaps {
		if slices.Contains(s.Tags, "scheduled") {
			scheduled = append(scheduled, s.ID[:8])
		}
		if s.ID == setSnap.SnapshotID {
			hasSet = true
		}
	}
	slices.Sort(scheduled)
	newest := append(slices.Clone(ids[r-2:r]), ids[r:]...)
	slices.Sort(newest)
	if fmt.Sprint(scheduled) != fmt.Sprint(newest) {
		t.Errorf("scheduled snapshots left %v, want the newest two %v (made %v)", scheduled, newest, ids)
	}
	if !hasSet {
		t.Errorf("retention removed the backup set's snapshot %s", setSnap.SnapshotID)
	}
}

type resticSnapshot struct {
	ID   string   `json:"id"`
	Tags []string `json:"tags"`
}

// resticSnapshots asks restic itself, with the lab's repository and
// password, not through kubectl dr.
func resticSnapshots(t *testing.T, args ...string) []resticSnapshot {
	t.Helper()
	cmd := exec.Command(theLab.Bin.Restic, append([]string{"snapshots", "--json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"RESTIC_REPOSITORY=s3:"+labEnv(t, "DR_S3_ENDPOINT")+"/"+theLab.State.Bucket+"/lab/"+theLab.State.ClusterID+"/restic",
		"RESTIC_PASSWORD_FILE="+theLab.ResticPasswordPath(),
		"AWS_ACCESS_KEY_ID="+theLab.State.MinIOUser,
		"AWS_SECRET_ACCESS_KEY="+theLab.State.MinIOSecret,
		"RESTIC_CACHE_DIR="+t.TempDir(),
	)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("restic snapshots: %v", err)
	}
	var snaps []resticSnapshot
	if err := json.Unmarshal(out, &snaps); err != nil {
		t.Fatal(err)
	}
	return snaps
}

// A hostPath PersistentVolume whose directory is not named the
// local-path way: the DaemonSet's agent learns its claim from the API.
func TestFilesPVCFromPersistentVolume(t *testing.T) {
	dir := filepath.Join(theLab.DataDir("server-1"), "storage", "static-www")
	writeFile(t, filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>\n"))
	t.Cleanup(func() { os.RemoveAll(dir) })
	pv := fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-static-www
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath: {path: %s}
  claimRef: {namespace: web, name: static}
`, dir)
	applyManifest(t, pv)
	t.Cleanup(func() { runKubectl(t, "delete", "pv", "e2e-static-www", "--wait=false") })
	if r := kubectlDR(t, nil, "backup", "create", "pv-e2e", "--etcd=false", "--node", "server-1"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s", r.code, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "pv-e2e") })
	set := describeSet(t, "pv-e2e")
	p, _ := set.Part("server-1")
	if !slices.Contains(p.PVCs, "web/static") {
		t.Fatalf("server-1's PVCs %v lack web/static (from the PersistentVolume)", p.PVCs)
	}
	r := kubectlDR(t, nil, "restore", "pv-e2e", "--pvc", "web/static", "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --pvc web/static --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	if pv := previewJSON(t, r)["server-1"]; len(pv.Paths) != 1 || pv.Paths[0] != dir || pv.Unchanged.Files != 1 {
		t.Errorf("preview of web/static: paths %v, unchanged %d; want %s and 1", pv.Paths, pv.Unchanged.Files, dir)
	}
}
