package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// The recovery targets are checked before any agent is asked: each bad
// value is a usage error (exit 2) saying what is wrong, nothing on stdout.
func TestPGRestoreTargetUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := "--target-dir=/x"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to-lsn", "0/3000000", "--to-xid", "5", dir}, "give exactly one of --to TIME, --to-lsn LSN, --to-xid XID, --to-name NAME, --immediate and --latest"},
		{[]string{"--immediate", "--latest", dir}, "give exactly one of"},
		{[]string{"--to-lsn", "3000000", dir}, `--to-lsn: LSN "3000000": want X/Y in hex`},
		{[]string{"--to-lsn", "0/xyz", dir}, `--to-lsn: LSN "0/xyz": want X/Y in hex`},
		{[]string{"--to-xid", "-4", dir}, `--to-xid: xid "-4": want an unsigned integer`},
		{[]string{"--to-xid", "abc", dir}, `--to-xid: xid "abc": want an unsigned integer`},
		{[]string{"--to-xid", "2", dir}, "--to-xid: xid 2: not a normal transaction id"},
		{[]string{"--to-name", "", dir}, "--to-name: restore point name: empty"},
		{[]string{"--to-name", strings.Repeat("n", 64), dir}, "64 bytes, PostgreSQL keeps at most 63"},
		{[]string{"--to-name", "a\nb", dir}, "control characters"},
		{[]string{"--latest", "--timeline", "two", dir}, `--timeline: timeline "two": want latest, current or a timeline number`},
		{[]string{"--latest", "--timeline", "0", dir}, `--timeline: timeline "0"`},
		{[]string{"--to-name", "x", "--exclusive", dir}, "--exclusive applies to --to, --to-lsn and --to-xid only"},
		{[]string{"--immediate", "--exclusive", dir}, "--exclusive applies to"},
		{[]string{"--to-lsn", "0/3000000"}, "--target-dir: an absolute directory on the node is required"},
		{[]string{"--to-lsn", "0/3000000", "--dry-run", "--target-dir", "rel"}, `--target-dir "rel"`},
		{[]string{"--to-lsn", "0/3000000", "--dry-run", "--verify"}, "give one of --dry-run and --verify"},
		{[]string{"--to-lsn", "0/3000000", "--dry-run", "-o", "xml"}, `unknown output format "xml"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := e.run(append([]string{"pg", "restore", "src"}, c.args...)...)
			if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
				t.Errorf("want exit 2 and %q on stderr, nothing on stdout\n%s", c.want, r)
			}
		})
	}
}

// seedPG writes base backup records and WAL objects of source "db" into
// the store: bb1 in segment 2, bb2 in segment 5 of timeline 1, segments 2
// to 9 of timeline 1, and timeline 2 branched at 0/8000000 with segments
// 8 and 9.
func seedPG(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, b := range []*basebackup.BaseBackup{
		{ID: "bb1", StartLSN: "0/2000028", StopLSN: "0/2000100", StopSnapshot: "100:105:"},
		{ID: "bb2", StartLSN: "0/5000028", StopLSN: "0/5000138", StopSnapshot: "200:210:"},
	} {
		b.Source, b.Timeline, b.PGVersion = "db", 1, "15"
		b.StartTime, b.StopTime = t0.Add(time.Duration(i)*time.Hour), t0.Add(time.Duration(i)*time.Hour+time.Minute)
		if err := basebackup.Write(ctx, e.store, b, e.signer("server-1")); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, data []byte) {
		var obj bytes.Buffer
		if err := enc.Encode(&obj, data); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Put(ctx, walobj.Key("db", name), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
	}
	for n := 2; n <= 9; n++ {
		put(fmt.Sprintf("0000000100000000%08X", n), []byte("segment"))
	}
	put("00000002.history", []byte("1\t0/8000000\tno recovery target specified\n"))
	put("000000020000000000000008", []byte("segment"))
	put("000000020000000000000009", []byte("segment"))
}

// pg restore --dry-run through a real agent on a file store: the plan
// names the base backup, the WAL per timeline and that every segment is
// there; with one deleted it names it and exits 1; pg ls shows the ranges,
// the branch and the first recoverable point.
func TestPGRestoreDryRunAndLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	seedPG(t, e)

	r := e.run("pg", "restore", "db", "--to-lsn", "0/4000010", "--dry-run", "--node", "server-1")
	for _, want := range []string{"base backup bb1: WAL 0/2000028..0/2000100", "the newest base backup that ends before LSN 0/4000010",
		"000000010000000000000002..000000010000000000000004", "WAL: all 3 segments present", "recovery_target_lsn = '0/4000010'", "recovery_target_timeline = '2'"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("dry run: want exit 0 and %q\n%s", want, r)
		}
	}
	// Timeline 2 from bb2: timeline 1 up to the switch, then timeline 2.
	r = e.run("pg", "restore", "db", "--latest", "--dry-run", "--node", "server-1", "-o", "json")
	var plan printers.PGRestorePlan
	if err := json.Unmarshal([]byte(r.stdout), &plan); r.code != 0 || err != nil {
		t.Fatalf("dry run -o json: %v\n%s", err, r)
	}
	wantSteps := []printers.PGReplayStep{
		{Timeline: 1, BeginLSN: "0/5000028", EndLSN: "0/8000000", FirstSegment: "000000010000000000000005", LastSegment: "000000010000000000000007", Segments: 3},
		{Timeline: 2, BeginLSN: "0/8000000", FirstSegment: "000000020000000000000008", LastSegment: "000000020000000000000009", Segments: 2},
	}
	if plan.BaseBackup != "bb2" || plan.Timeline != 2 || plan.Segments != 5 || len(plan.Missing) != 0 || !reflect.DeepEqual(plan.Steps, wantSteps) {
		t.Errorf("latest plan: %+v", plan)
	}
	// Timeline 1 only, to its end: 9 on timeline 1.
	r = e.run("pg", "restore", "db", "--latest", "--timeline", "1", "--dry-run", "--node", "server-1", "-o", "yaml")
	if r.code != 0 || !strings.Contains(r.stdout, `lastSegment: "000000010000000000000009"`) || !strings.Contains(r.stdout, "kind: PGRestorePlan") {
		t.Errorf("timeline 1 plan:\n%s", r)
	}
	r = e.run("pg", "restore", "db", "--latest", "--timeline", "3", "--dry-run", "--node", "server-1")
	if r.code != 1 || !strings.Contains(r.stderr, "timeline 3 not in the archive: timelines 1, 2") {
		t.Errorf("timeline 3: want exit 1 and the timelines there\n%s", r)
	}
	r = e.run("pg", "restore", "db", "--to-lsn", "0/1000000", "--dry-run", "--node", "server-1")
	if r.code != 1 || !strings.Contains(r.stderr, "no base backup before LSN 0/1000000: the oldest, bb1, ends at 0/2000100") {
		t.Errorf("LSN before every base backup:\n%s", r)
	}
	r = e.run("pg", "restore", "db", "--to-xid", "150", "--dry-run", "--node", "server-1")
	if r.code != 0 || !strings.Contains(r.stdout, "base backup bb1") {
		t.Errorf("xid 150 ended before bb2 did (bb2's snapshot starts at 200): want bb1\n%s", r)
	}

	if err := e.store.Delete(context.Background(), walobj.Key("db", "000000010000000000000003")); err != nil {
		t.Fatal(err)
	}
	r = e.run("pg", "restore", "db", "--to-lsn", "0/4000010", "--dry-run", "--node", "server-1")
	if r.code != 1 || !strings.Contains(r.stdout, "WAL: MISSING 000000010000000000000003") ||
		!strings.Contains(r.stderr, "000000010000000000000003 missing from the store between base backup bb1 and the target") {
		t.Errorf("dry run with a segment missing: want exit 1 naming it\n%s", r)
	}

	r = e.run("pg", "ls", "db")
	for _, want := range []string{"TIMELINE", "000000010000000000000002, 000000010000000000000004..000000010000000000000009",
		"from 1 at 0/8000000", "db: first recoverable point 0/2000100 (timeline 1), 2026-12-01T10:01:00Z: the end of base backup bb1"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("pg ls: want %q\n%s", want, r)
		}
	}
	r = e.run("pg", "ls", "db", "-o", "json")
	var list printers.BaseBackupList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 2 || len(list.WAL) != 1 || len(list.WAL[0].Timelines) != 2 ||
		len(list.WAL[0].Timelines[0].Gaps) != 1 || list.WAL[0].Timelines[0].Gaps[0].First != "000000010000000000000003" {
		t.Errorf("pg ls -o json: %v\n%s", err, r)
	}
}

// pg restore trusts a base backup only as its node signed it: a record
// changed after it was signed is refused whatever the flags, one signed
// by another node's agent is refused, and one with no signature is
// refused unless --allow-unsigned; each error names the record.
func TestPGRestoreChecksTheBaseBackupsSignature(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	seedPG(t, e)
	ctx := context.Background()
	key := basebackup.Key("db", "bb2")
	rc, err := e.store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	signed, _ := io.ReadAll(rc)
	rc.Close()
	restore := func(extra ...string) result {
		return e.run(append([]string{"pg", "restore", "db", "--latest", "--dry-run", "--node", "server-1"}, extra...)...)
	}
	if r := restore(); r.code != 0 || !strings.Contains(r.stdout, "base backup bb2") {
		t.Fatalf("the signed base backup: want exit 0\n%s", r)
	}

	// Another restic snapshot put in the record: the signature no longer holds.
	forged := bytes.Replace(signed, []byte(`"stopLSN"`), []byte(`"snapshotID": "feedface", "stopLSN"`), 1)
	if _, err := e.store.Put(ctx, key, bytes.NewReader(forged), int64(len(forged))); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--allow-unsigned"}} {
		if r := restore(extra...); r.code != 1 || !strings.Contains(r.stderr, "base backup record refused") || !strings.Contains(r.stderr, key+" changed after it was signed") {
			t.Errorf("a changed record %v: want exit 1, refused as changed after it was signed\n%s", extra, r)
		}
	}

	// Signed by another node's agent.
	var b basebackup.BaseBackup
	if err := json.Unmarshal(signed, &b); err != nil {
		t.Fatal(err)
	}
	b.Node = "server-1"
	if err := basebackup.Write(ctx, e.store, &b, e.signer("worker-1")); err != nil {
		t.Fatal(err)
	}
	if r := restore(); r.code != 1 || !strings.Contains(r.stderr, "belongs to node server-1 but is signed by") {
		t.Errorf("a record signed by another node: want exit 1, naming both\n%s", r)
	}

	// Unsigned (planted, or written before records were signed).
	if err := basebackup.Write(ctx, e.store, &b, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(ctx, key+signature.Suffix); err != nil {
		t.Fatal(err)
	}
	if r := restore(); r.code != 1 || !strings.Contains(r.stderr, "base backup record "+key+" is not signed") || !strings.Contains(r.stderr, "--allow-unsigned") {
		t.Errorf("an unsigned record: want exit 1, saying --allow-unsigned\n%s", r)
	}
	if r := restore("--allow-unsigned"); r.code != 0 || !strings.Contains(r.stdout, "base backup bb2") {
		t.Errorf("an unsigned record with --allow-unsigned: want exit 0\n%s", r)
	}
}
