package cmd_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
		Timeline: 1, StopTime: at, StopSegment: "000000010000000000000002"}); err != nil {
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
