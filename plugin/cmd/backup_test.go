package cmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// A node whose agent has file backups off is skipped when no --node names
// it; with nothing else to back up, no set is recorded.
func TestBackupCreateSkipsNodesWithFilesOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.agent("server-2", nil)

	r := e.run("backup", "create", "nightly", "--etcd=false")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	for _, node := range []string{"server-1", "server-2"} {
		if !strings.Contains(r.stderr, node+"     skipped  file backups are off on node "+node) {
			t.Errorf("stderr does not report %s skipped:\n%s", node, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "error: nothing was backed up: no node has paths to back up") {
		t.Errorf("stderr does not say nothing was backed up:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	if s := e.readSet("nightly"); s != nil {
		t.Errorf("a set was recorded although nothing was backed up: %+v", s)
	}
}

// Without an etcd member to snapshot on and no files, the set is recorded
// Failed with the reason, printed, and the command exits 1.
func TestBackupCreateRecordsAFailedSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)

	r := e.run("backup", "create", "nightly")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	s := e.readSet("nightly")
	if s == nil {
		t.Fatalf("no set recorded\n%s", r)
	}
	if s.Phase != backupset.Failed || s.Etcd == nil || !strings.Contains(s.Etcd.Error, "no agent on an etcd member answered") || len(s.Files) != 0 {
		t.Errorf("recorded set: phase %s, etcd %+v, files %+v; want Failed with the etcd part's error and no files", s.Phase, s.Etcd, s.Files)
	}
	for _, want := range []string{"Name:      nightly\n", "Phase:     Failed\n", "  Error:     no agent on an etcd member answered"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "error: backup nightly failed: etcd on (no node): no agent on an etcd member answered") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// A node named with --node is not skipped: its agent's refusal fails its
// part.
func TestBackupCreateNamedNodeWithFilesOffFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.agent("server-2", nil)

	r := e.run("backup", "create", "nightly", "--etcd=false", "--node", "server-1")
	if r.code != 1 {
		t.Fatalf("want exit 1\n%s", r)
	}
	s := e.readSet("nightly")
	if s == nil || s.Phase != backupset.Failed || len(s.Files) != 1 || s.Files[0].Node != "server-1" || !strings.Contains(s.Files[0].Error, "file backups are off on node server-1") {
		t.Fatalf("recorded set %+v; want Failed with server-1's refusal only\n%s", s, r)
	}
	if !strings.Contains(r.stderr, "server-1     failed") || strings.Contains(r.stderr, "server-2") {
		t.Errorf("stderr should report server-1 failed and not mention server-2:\n%s", r.stderr)
	}
}

// One node backs up (a fake agent: restic cannot run here), the other
// refuses: PartiallyFailed, exit 3; with -o json the set is JSON on stdout
// and stderr is progress events then the error, each a JSON line.
func TestBackupCreatePartiallyFailedWithAFakeAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.fakeAgent("server-2", &fakeFilesAgent{node: "server-2", snapshot: &agentv1.FileSnapshot{
		Id: "0123456789abcdef", Node: "server-2", Paths: []string{"/data"}, TotalFiles: 3, TotalBytes: 2048, Pvcs: []string{"shop/db"},
	}})

	r := e.run("backup", "create", "mixed", "--etcd=false", "--node", "server-1", "--node", "server-2", "-o", "json")
	if r.code != 3 {
		t.Fatalf("want exit 3\n%s", r)
	}
	var got printers.BackupSet
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not a BackupSet: %v\n%s", err, r.stdout)
	}
	if got.Kind != "BackupSet" || got.Phase != backupset.PartiallyFailed {
		t.Errorf("printed set: kind %q phase %q, want BackupSet PartiallyFailed", got.Kind, got.Phase)
	}
	s := e.readSet("mixed")
	if s == nil || s.Phase != backupset.PartiallyFailed {
		t.Fatalf("recorded set %+v, want PartiallyFailed", s)
	}
	if p, _ := s.Part("server-2"); p.SnapshotID != "0123456789abcdef" || p.Files != 3 || p.Error != "" {
		t.Errorf("server-2's part %+v, want its snapshot", p)
	}
	if p, _ := s.Part("server-1"); p.SnapshotID != "" || !strings.Contains(p.Error, "file backups are off") {
		t.Errorf("server-1's part %+v, want the agent's refusal", p)
	}

	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		var ev printers.ProgressEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != "progress" {
			t.Errorf("stderr line %q is not a progress event (%v)", l, err)
		}
	}
	je := jsonError(t, r.stderr)
	if je.Type != "error" || je.Kind != "Error" || je.ExitCode != 3 || !strings.HasPrefix(je.Message, "backup mixed is PartiallyFailed: files on server-1: ") {
		t.Errorf("JSON error %+v", je)
	}
}

// What backup create refuses before anything is backed up: exit 2, the
// reason on stderr, no set recorded.
func TestBackupCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.agent("server-2", nil)
	e.writeSet(&backupset.Set{ID: "taken", Phase: backupset.Completed})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"name taken", []string{"taken"}, "backup taken already exists (kubectl dr backup describe taken); pick another name"},
		{"unknown node", []string{"x1", "--node", "ghost"}, "--node ghost: no agent for that node (known: server-1, server-2)"},
		{"bad name", []string{"Bad_Name"}, `invalid backup name "Bad_Name"`},
		{"nothing to do", []string{"x2", "--etcd=false", "--files=false", "--buckets=false"}, "--etcd=false, --files=false and --buckets=false leave nothing to back up"},
		{"node without files", []string{"x3", "--files=false", "--node", "server-1"}, "--node picks nodes for file backups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(append([]string{"backup", "create"}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, "error: "+tc.want) || r.stdout != "" {
				t.Errorf("want exit 2 and %q\n%s", tc.want, r)
			}
		})
	}
	for _, id := range []string{"x1", "x2", "x3"} {
		if e.readSet(id) != nil {
			t.Errorf("set %s recorded by a refused create", id)
		}
	}
}

// --etcd=false --files=false is a backup of the bucket sources alone; with
// none configured it fails saying so, and records nothing.
func TestBackupCreateOfBucketsAloneNeedsASource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	r := e.run("backup", "create", "only-buckets", "--etcd=false", "--files=false")
	if r.code != 1 || !strings.Contains(r.stderr, "no bucket source is configured") {
		t.Errorf("want exit 1 naming the missing bucket sources\n%s", r)
	}
	if e.readSet("only-buckets") != nil {
		t.Errorf("a set recorded with nothing in it")
	}
}

func seedSets(e *env) {
	now := time.Now().UTC()
	e.writeSet(&backupset.Set{
		ID: "older", Phase: backupset.Completed, Started: now.Add(-2 * time.Hour), Finished: now.Add(-2*time.Hour + time.Minute),
		Etcd:  &backupset.EtcdPart{Node: "server-1", Snapshot: "older-server-1-1", Revision: 42, Size: 1 << 20},
		Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "aaaaaaaa11", Paths: []string{"/data"}, Files: 10, Bytes: 4096}},
	})
	e.writeSet(&backupset.Set{
		ID: "newer", Phase: backupset.PartiallyFailed, Started: now.Add(-time.Hour), Finished: now.Add(-time.Hour + 30*time.Second),
		Files: []backupset.FilePart{
			{Node: "server-1", SnapshotID: "bbbbbbbb22", Paths: []string{"/data"}, Files: 5, Bytes: 1024, PVCs: []string{"shop/db"}},
			{Node: "server-2", Error: "restic: wrong password"},
		},
	})
}

func TestBackupList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedSets(e)

	r := e.run("backup", "ls")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := firstColumn(r.stdout); strings.Join(got, ",") != "newer,older" {
		t.Errorf("sets listed %v, want newer,older (newest first)\n%s", got, r.stdout)
	}
	if h := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[0]); strings.Join(h, " ") != "NAME PHASE AGE ETCD FILES SIZE DURATION" {
		t.Errorf("header %v", h)
	}
	rs := rows(t, r.stdout)
	if got := rs["newer"]; len(got) < 4 || got[1] != "PartiallyFailed" || got[3] != "-" {
		t.Errorf("newer row %v", got)
	}
	if got := rs["older"]; len(got) < 4 || got[1] != "Completed" || got[3] != "older-server-1-1" {
		t.Errorf("older row %v", got)
	}

	r = e.run("backup", "ls", "-o", "wide")
	if !strings.Contains(rows(t, r.stdout)["newer"][len(rows(t, r.stdout)["newer"])-1], "password") || !strings.Contains(r.stdout, "server-1:shop/db") {
		t.Errorf("wide listing lacks the PVC or the error:\n%s", r.stdout)
	}

	r = e.run("backup", "ls", "-o", "json")
	var list printers.BackupSetList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("%v\n%s", err, r)
	}
	if list.Kind != "BackupSetList" || len(list.Items) != 2 || list.Items[0].ID != "newer" || list.Items[1].ID != "older" {
		t.Errorf("JSON list %+v", list)
	}

	empty := newEnv(t)
	if r := empty.run("backup", "ls"); r.code != 0 || strings.Join(strings.Fields(r.stdout), " ") != "NAME PHASE AGE ETCD FILES SIZE DURATION" {
		t.Errorf("empty store: want the header only\n%s", r)
	}
}

func TestBackupDescribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedSets(e)

	r := e.run("backup", "describe", "newer")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{
		"Name:      newer\n", "Phase:     PartiallyFailed\n", "Files:\n",
		"  server-1:\n    Snapshot:  bbbbbbbb22\n    Paths:     /data\n    Files:     5 (1.0 KiB, 0 B new)\n    PVCs:      shop/db\n",
		"  server-2:\n    Error:     restic: wrong password\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe lacks %q:\n%s", want, r.stdout)
		}
	}

	r = e.run("backup", "describe", "older", "-o", "json")
	var got printers.BackupSet
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("%v\n%s", err, r)
	}
	if got.Kind != "BackupSet" || got.ID != "older" || got.Etcd.Snapshot != "older-server-1-1" || got.Etcd.Revision != 42 {
		t.Errorf("JSON set %+v", got)
	}

	if r := e.run("backup", "describe", "missing"); r.code != 1 || !strings.Contains(r.stderr, "error: backup set not found: no \"missing\"") {
		t.Errorf("missing set: want exit 1 and backup set not found\n%s", r)
	}
	if r := e.run("backup", "describe", "Not/A/Name"); r.code != 2 || !strings.Contains(r.stderr, "invalid backup name") {
		t.Errorf("bad name: want exit 2\n%s", r)
	}
}

// backup ls lists the good sets when one record is corrupt, and names it.
func TestBackupListNamesAnUnusableRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.writeSet(&backupset.Set{ID: "backup-20260102-000000", Phase: backupset.Completed, Started: time.Now().Add(-time.Hour)})
	bad := "\x00\x01 not a set"
	if _, err := e.store.Put(context.Background(), "sets/backup-20260101-000000.json", strings.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	r := e.run("backup", "ls")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := firstColumn(r.stdout); strings.Join(got, ",") != "backup-20260102-000000" {
		t.Errorf("sets listed %v, want the good one\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stderr, "warning: skipped sets/backup-20260101-000000.json") {
		t.Errorf("stderr does not name the corrupt record:\n%s", r.stderr)
	}
}
