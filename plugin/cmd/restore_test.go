package cmd_test

import (
	"encoding/json"
	"strings"
	"testing"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// nightly has files from server-1 and gone, and a failed part of server-2.
func seedRestoreSet(e *env) {
	e.writeSet(&backupset.Set{ID: "nightly", Phase: backupset.PartiallyFailed, Files: []backupset.FilePart{
		{Node: "server-1", SnapshotID: "1111111111111111", Paths: []string{"/data"}, PVCs: []string{"shop/db"}},
		{Node: "server-2", Error: "restic: wrong password"},
		{Node: "gone", SnapshotID: "3333333333333333", Paths: []string{"/srv"}},
	}})
}

// What restore refuses, checked against the set and the agents before
// anything is restored; the agents have file backups off, so a preview is
// refused too.
func TestRestoreRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.agent("server-2", nil)
	seedRestoreSet(e)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing set", []string{"no-such-backup", "--dry-run"}, 1, "backup set not found"},
		{"node not in set", []string{"nightly", "--node", "server-3"}, 2, "--node server-3: backup nightly has no files from that node (it has: server-1, server-2, gone)"},
		{"failed part", []string{"nightly", "--node", "server-2"}, 1, "--node server-2: the backup of that node failed in nightly: restic: wrong password"},
		{"pvc not in set", []string{"nightly", "--pvc", "shop/other"}, 1, "backup nightly holds no PVC shop/other"},
		{"path not in set", []string{"nightly", "--path", "/etc"}, 1, "backup nightly holds none of /etc (its paths: server-1:/data, gone:/srv)"},
		{"to-node from two nodes", []string{"nightly", "--to-node", "server-2"}, 2, "--to-node needs one source node"},
		{"no agent for the node", []string{"nightly", "--node", "gone", "--dry-run"}, 1, "node gone: no agent answers for it; restore onto another node with --to-node"},
		{"bad pvc", []string{"nightly", "--pvc", "no-slash"}, 2, `--pvc "no-slash": want NAMESPACE/NAME`},
		{"relative path", []string{"nightly", "--path", "etc/passwd"}, 2, "must be absolute"},
		{"dotdot path", []string{"nightly", "--path", "/data/../etc"}, 2, `".." is not allowed`},
		{"relative target", []string{"nightly", "--target", "tmp"}, 2, "must be an absolute path on the node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(append([]string{"restore"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit %d and %q\n%s", tc.code, tc.want, r)
			}
		})
	}

	// The agent refuses the preview: the row says why, nothing is restored.
	r := e.run("restore", "nightly", "--node", "server-1")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	row := rows(t, r.stdout)["server-1"]
	if len(row) < 2 || row[1] != "error" || !strings.Contains(r.stdout, "file backups are off on node server-1") {
		t.Errorf("preview row %v\n%s", row, r.stdout)
	}
	if !strings.Contains(r.stderr, "error: preview failed, nothing was restored: server-1: FailedPrecondition: file backups are off on node server-1") {
		t.Errorf("stderr:\n%s", r.stderr)
	}

	// Onto another node: the preview is asked of that node's agent.
	r = e.run("restore", "nightly", "--node", "server-1", "--to-node", "server-2", "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, "server-2: FailedPrecondition: file backups are off on node server-2") {
		t.Errorf("--to-node server-2: want server-2's refusal\n%s", r)
	}
}

// The preview, the confirmation it needs and the restore, against a fake
// agent (the real one needs restic for a preview).
func TestRestorePreviewAndConfirmWithAFakeAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := &fakeFilesAgent{
		node: "server-1",
		preview: &agentv1.RestorePreview{
			SnapshotId: "1111111111111111", TargetDir: "/", Paths: []string{"/data"},
			Digest:      "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12",
			CreateFiles: 2, CreateBytes: 2048, ChangeFiles: 1, ChangeBytes: 1024, UnchangedFiles: 7, UnchangedBytes: 7168, ExtraFiles: 1, ExtraBytes: 10,
			Changes: []*agentv1.FileChange{
				{Path: "/data/new-1", Kind: agentv1.FileChange_KIND_CREATE, SizeBytes: 1024},
				{Path: "/data/new-2", Kind: agentv1.FileChange_KIND_CREATE, SizeBytes: 1024},
				{Path: "/data/changed", Kind: agentv1.FileChange_KIND_CHANGE, SizeBytes: 1024},
			},
		},
		result: &agentv1.RestoreFilesResult{FilesRestored: 3, BytesRestored: 3072, MovedAsideDir: "/var/lib/dr-agent/restore-aside/x"},
	}
	e.fakeAgent("server-1", agent)
	seedRestoreSet(e)

	r := e.run("restore", "nightly", "--node", "server-1", "--dry-run")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := rows(t, r.stdout)["server-1"]; strings.Join(got, " ") != "server-1 2 (2.0 KiB) 1 (1.0 KiB) 7 (7.0 KiB) 1 (10 B) / sha256:ab12cd34ef56…" {
		t.Errorf("preview row %q\n%s", got, r.stdout)
	}
	for _, want := range []string{"server-1\tcreate  /data/new-1 (1.0 KiB)\n", "server-1\treplace /data/changed (1.0 KiB)\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("preview lacks %q:\n%s", want, r.stdout)
		}
	}

	r = e.run("restore", "nightly", "--node", "server-1", "--dry-run", "-o", "json")
	var list printers.RestorePreviewList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("%v\n%s", err, r)
	}
	if list.Kind != "RestorePreviewList" || list.Backup != "nightly" || len(list.Items) != 1 || list.Items[0].Change.Files != 1 || len(list.Items[0].Changes) != 3 || list.Items[0].Digest != agent.preview.Digest {
		t.Errorf("JSON preview %+v", list)
	}

	// Not a terminal and no --yes: the preview, then a usage error.
	r = e.run("restore", "nightly", "--node", "server-1")
	if r.code != 2 || !strings.Contains(r.stderr, "error: nothing restored: this was the preview; run again with --yes to restore") || rows(t, r.stdout)["server-1"] == nil {
		t.Errorf("without --yes: want the preview and exit 2 asking for --yes\n%s", r)
	}
	if n := agent.restored(); n != 0 {
		t.Fatalf("%d restores ran without --yes", n)
	}

	r = e.run("restore", "nightly", "--node", "server-1", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "server-1: restored 3 file(s), 3.0 KiB; the files it replaced are in /var/lib/dr-agent/restore-aside/x\n") {
		t.Errorf("--yes: want the restore reported\n%s", r)
	}
	if agent.restored() != 1 || agent.restores[0].SnapshotId != "1111111111111111" || agent.restores[0].BackupSet != "nightly" || agent.digests[0] != agent.preview.Digest {
		t.Errorf("restores asked: %v with digests %q", agent.restores, agent.digests)
	}
}

// A node whose files all match the backup has nothing to restore.
func TestRestoreNothingToDoWithAFakeAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agent := &fakeFilesAgent{node: "server-1", preview: &agentv1.RestorePreview{SnapshotId: "1111111111111111", TargetDir: "/", UnchangedFiles: 4, UnchangedBytes: 40}}
	e.fakeAgent("server-1", agent)
	seedRestoreSet(e)

	r := e.run("restore", "nightly", "--node", "server-1", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "server-1: nothing to restore, every file matches the backup\n") || agent.restored() != 0 {
		t.Errorf("want nothing restored\n%s", r)
	}
}
