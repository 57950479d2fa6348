package cmd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// seedRecovery stores what a cluster backed up an hour ago: a datastore
// snapshot, a set with server-1's files, and a base backup of pg-main
// with WAL archived after it.
func seedRecovery(e *env) time.Time {
	e.t.Helper()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "s-1", Node: "server-1", Created: at, Revision: 10, Size: 1 << 20, Uploaded: true, StoreKey: "etcd/server-1/s-1.db.zst", Compression: "zstd"})
	e.writeSet(&backupset.Set{ID: "backup-1", Started: at, Finished: at.Add(time.Minute), Phase: backupset.Completed,
		Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "abcd1234", Paths: []string{"/srv/app"}}}})
	if err := basebackup.Write(context.Background(), e.store, &basebackup.BaseBackup{ID: "bb-1", Source: "pg-main", Node: "db-1", PGData: "/var/lib/pg",
		Timeline: 1, StopTime: at, StopSegment: "000000010000000000000002"}, e.signer("db-1")); err != nil {
		e.t.Fatal(err)
	}
	e.writeWAL("pg-main", "000000010000000000000002", 50*time.Minute)
	e.writeWAL("pg-main", "000000010000000000000003", 10*time.Minute)
	return at
}

// A time before every backup: the plan names every layer with nothing at
// or before it, and the recovery refuses before it asks any agent.
func TestRecoverRefusesALayerWithNothingAtTheTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := seedRecovery(e)
	e.deadAgent("server-1")
	to := at.Add(-time.Hour).Format(time.RFC3339)
	r := e.run("recover", "--to", to, "--yes")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r)
	}
	for _, want := range []string{
		"etcd: no datastore snapshot at or before " + to + ": the oldest, s-1, was taken " + at.Format(time.RFC3339),
		"files of server-1: no file snapshot of server-1 done by " + to,
		"postgres pg-main: no base backup of pg-main finished by " + to,
		"nothing was started (--skip-layer LAYER",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q\n%s", want, r)
		}
	}
	if !rowMatches(r.stdout, "etcd", "-", "NOTHING") || !rowMatches(r.stdout, "files", "server-1", "NOTHING") {
		t.Errorf("the plan does not show the layers with nothing:\n%s", r.stdout)
	}
	if strings.Contains(r.stderr, "no agent answers") || strings.Contains(r.stderr, "server-1: unavailable") {
		t.Errorf("agents were asked before the plan was known to be complete:\n%s", r.stderr)
	}
}

// At a time the backups cover: the plan picks each layer's point (the
// database to the time itself, its WAL archived after it), and a part
// whose node has no agent refuses the recovery before anything starts.
func TestRecoverPlanAndAMissingAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := seedRecovery(e)
	e.agent("server-1", nil)
	to := at.Add(30 * time.Minute).Format(time.RFC3339)
	r := e.run("recover", "--to", to, "--dry-run")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r)
	}
	if !rowMatches(r.stdout, "etcd", "server-1", "s-1", at.Format(time.RFC3339)) || !rowMatches(r.stdout, "files", "server-1", "abcd1234") ||
		!rowMatches(r.stdout, "postgres", "db-1", "pg-main", to) {
		t.Errorf("plan:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "nothing was started: the plan restores postgres pg-main on node db-1, and no agent answers for it") {
		t.Errorf("stderr: %s", r)
	}

	// Leaving the layer out goes on to the servers: server-1's agent has
	// no k3s data dir, so it is not a server.
	r = e.run("recover", "--to", to, "--dry-run", "--skip-layer", "postgres")
	if r.code != 1 || !strings.Contains(r.stderr, "no agent runs on a server") || strings.Contains(r.stdout, "pg-main") {
		t.Errorf("--skip-layer postgres: %s", r)
	}
	r = e.run("recover", "--to", to, "--dry-run", "--skip-layer", "postgres", "--skip-layer", "etcd")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing was changed (--dry-run).") {
		t.Errorf("files only, --dry-run: %s", r)
	}
}

func TestRecoverUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{
		{"recover"},
		{"recover", "--latest", "--backup", "backup-1"},
		{"recover", "--to", "yesterday"},
		{"recover", "--to", time.Now().Add(time.Hour).Format(time.RFC3339)},
		{"recover", "--latest", "--skip-layer", "dns"},
		{"recover", "--latest", "--skip-preflight", "tokens"},
		{"recover", "--latest", "--pg-target", "pg-main"},
		{"recover", "extra", "--latest"},
		{"recover", "--latest", "--join-timeout", "0s"},
	} {
		if r := e.run(args...); r.code != 2 {
			t.Errorf("%v: %s, want exit 2", args, r)
		}
	}
	seedRecovery(e)
	if r := e.run("recover", "--latest", "--pg", "pg-other"); r.code != 2 || !strings.Contains(r.stderr, "no WAL source of that name (it has pg-main)") {
		t.Errorf("--pg pg-other: %s", r)
	}
	if r := e.run("recover", "--backup", "backup-9"); r.code != 1 || !strings.Contains(r.stderr, "backup set not found: backup-9") {
		t.Errorf("--backup backup-9: %s", r)
	}
}

// goneFilesAgent previews like a files agent and goes away during the
// restore.
type goneFilesAgent struct{ fakeFilesAgent }

func (a *goneFilesAgent) RestoreFiles(*agentv1.RestoreFilesRequest, agentv1.AgentService_RestoreFilesServer) error {
	return status.Error(codes.Unavailable, "connection reset: the agent went away")
}

// An agent that goes away in the middle: the other parts finish, the
// recovery stops there (nothing after the layers runs), the timeline shows
// what was done and the failed part says how to resume.
func TestRecoverStopsWhenAnAgentGoesAwayWithFakeAgents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	preview := func(node string) *agentv1.RestorePreview {
		return &agentv1.RestorePreview{SnapshotId: "abcd", TargetDir: "/", Paths: []string{"/srv"}, Digest: strings.Repeat("ab", 32), CreateFiles: 1, CreateBytes: 10,
			Changes: []*agentv1.FileChange{{Path: "/srv/" + node, Kind: agentv1.FileChange_KIND_CREATE, SizeBytes: 10}}}
	}
	ok := &fakeFilesAgent{node: "server-1", preview: preview("server-1"), result: &agentv1.RestoreFilesResult{FilesRestored: 1, BytesRestored: 10}}
	gone := &goneFilesAgent{fakeFilesAgent{node: "server-2", preview: preview("server-2")}}
	e.fakeAgent("server-1", ok)
	e.fakeAgent("server-2", gone)
	at := time.Now().UTC().Add(-time.Hour)
	e.writeSet(&backupset.Set{ID: "backup-1", Started: at, Finished: at.Add(time.Minute), Phase: backupset.Completed,
		Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "abcd"}, {Node: "server-2", SnapshotID: "ef01"}}})

	r := e.run("recover", "--latest", "--yes", "--skip-layer", "etcd")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r)
	}
	for _, want := range []string{
		"the recovery stopped: 1 part(s) failed, the others are restored",
		"files ef01 (node server-2):",
		"the agent went away",
		"to resume: kubectl dr restore backup-1 --node server-2",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q\n%s", want, r)
		}
	}
	if !rowMatches(r.stdout, "files", "abcd", "server-1") || !strings.Contains(r.stdout, "server-1: restored 1 file(s)") {
		t.Errorf("server-1's files are not shown restored:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "RTO") || strings.Contains(r.stdout, "Health checks") {
		t.Errorf("the recovery went on past the failed part:\n%s", r.stdout)
	}
	if ok.restored() != 1 {
		t.Errorf("server-1 restored %d times, want once", ok.restored())
	}
}
