package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/retention"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// psql runs one statement against the lab's PostgreSQL and returns its
// unaligned output.
func psql(t *testing.T, sql string) string {
	t.Helper()
	bin, err := lab.PGBin("psql")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = append(os.Environ(), theLab.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func walStatus(t *testing.T) printers.WALSource {
	t.Helper()
	r := kubectlDR(t, nil, "wal", "status", lab.WALSource, "-o", "json")
	if r.code != 0 {
		t.Fatalf("wal status: exit %d\n%s", r.code, r.stderr)
	}
	var l printers.WALSourceList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 {
		t.Fatalf("wal status -o json: %v\n%s", err, r.stdout)
	}
	return l.Items[0]
}

// PostgreSQL archives into the first node's spool (served by the
// DaemonSet's pod); the agent ships each segment, the spool drains, status
// shows the newest segment and its age, and `dr-agent wal fetch` gives back
// the same bytes, refusing a corrupt object.
func TestWALShippedFromTheSpoolAndFetchedBack(t *testing.T) {
	psql(t, "CREATE TABLE IF NOT EXISTS wal_e2e (id serial, v text)")
	var last string
	for range 3 {
		psql(t, "INSERT INTO wal_e2e (v) SELECT md5(i::text) FROM generate_series(1, 20000) i")
		last = psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	}
	// Keep PostgreSQL's own copy for the comparison below.
	pgCopy, _ := os.ReadFile(filepath.Join(theLab.PGData(), "pg_wal", last))

	deadline := time.Now().Add(60 * time.Second)
	var st printers.WALSource
	for {
		st = walStatus(t)
		if st.Newest >= last && st.BacklogFiles == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not shipped in 60s: %+v", last, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if st.Node != "server-1" || st.RPOSeconds == nil || *st.RPOSeconds > 60 || len(st.Gaps) != 0 || st.LastError != "" {
		t.Errorf("wal status: %+v", st)
	}
	if left, _ := os.ReadDir(theLab.WALSpool()); len(left) != 0 {
		t.Errorf("spool not drained: %d entries", len(left))
	}

	// A backup set records where the source stood.
	if r := kubectlDR(t, nil, "backup", "create", "wal-mark", "--etcd=false", "--node", "server-1"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s", r.code, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", "wal-mark") })
	set := describeSet(t, "wal-mark")
	if len(set.WAL) != 1 || set.WAL[0].Source != lab.WALSource || set.WAL[0].Node != "server-1" || set.WAL[0].Segment < last || set.WAL[0].LSN == "" {
		t.Errorf("set's WAL marks %+v; want pg-main on server-1 at %s or later, with the database's LSN", set.WAL, last)
	}

	// Stored encrypted to the snapshot recipient: without the key, fetch
	// refuses it and says what it needs.
	dest := filepath.Join(t.TempDir(), "seg")
	if r := runBin(t, theLab.Bin.DRAgent, nil, "wal", "fetch", "--config", theLab.AgentConfigPath("server-2"), lab.WALSource, last, dest); r.code != 255 || !strings.Contains(r.stderr, "encrypted") || !strings.Contains(r.stderr, "--key-file") {
		t.Errorf("wal fetch without the key: exit %d, %q; want 255 saying it is encrypted and to give --key-file", r.code, r.stderr)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("wal fetch without the key wrote %s", dest)
	}
	fetch := func(name, dest string) result {
		return runBin(t, theLab.Bin.DRAgent, nil, "wal", "fetch", "--config", theLab.AgentConfigPath("server-2"), "--key-file", theLab.SnapshotKeyPath(), lab.WALSource, name, dest)
	}
	if r := fetch(last, dest); r.code != 0 {
		t.Fatalf("wal fetch %s: exit %d\n%s", last, r.code, r.stderr)
	}
	got, _ := os.ReadFile(dest)
	if len(got) != 16<<20 {
		t.Fatalf("fetched %d bytes, want a 16 MiB segment", len(got))
	}
	// PostgreSQL may have recycled its file for a later segment already:
	// compare only if its first page still says it is this segment.
	if isSegment(pgCopy, last) && !bytes.Equal(got, pgCopy) {
		t.Errorf("fetched segment differs from PostgreSQL's pg_wal/%s", last)
	}
	if !isSegment(got, last) {
		t.Errorf("the fetched file's first page does not belong to segment %s", last)
	}

	// Past the end of the archive: exit 1, recovery ends normally.
	if r := fetch("0000000100000FFF000000FF", filepath.Join(t.TempDir(), "x")); r.code != 1 || !strings.Contains(r.stderr, "not in the archive") {
		t.Errorf("missing segment: exit %d, %q; want 1", r.code, r.stderr)
	}

	// A corrupt object: refused with exit 255 (recovery aborts), nothing
	// written where PostgreSQL would read it.
	key := "lab/" + theLab.State.ClusterID + "/wal/" + lab.WALSource + "/" + last[:8] + "/" + last + ".zst"
	stored := storeObject(t, key)
	if !bytes.HasPrefix(stored, []byte("drwal3 ")) || !bytes.Contains(stored[:200], []byte("\nage-encryption.org/v1\n")) {
		t.Errorf("the stored segment is not encrypted with age: it starts %q", stored[:min(len(stored), 120)])
	}
	// Cut short, as a copy that lost its tail would be. (A flipped bit
	// can land where zstd ignores it: the decoded bytes, checked against
	// the checksum they were shipped with, are what counts.)
	putStoreObject(t, key, stored[:len(stored)*2/3])
	t.Cleanup(func() { putStoreObject(t, key, stored) })
	corrupt := filepath.Join(t.TempDir(), "seg")
	if r := fetch(last, corrupt); r.code != 255 || !strings.Contains(r.stderr, "corrupt") {
		t.Errorf("corrupt segment: exit %d, %q; want 255", r.code, r.stderr)
	}
	if _, err := os.Stat(corrupt); !os.IsNotExist(err) {
		t.Errorf("a corrupt segment was written to %s", corrupt)
	}
}

func pgbench(t *testing.T, args ...string) {
	t.Helper()
	bin, err := lab.PGBin("pgbench")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), theLab.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

// The proof: pgbench for a while, a time T and the rows at T, more
// writes, then `pg restore --to T` into a scratch directory on another
// node, replayed by a scratch instance: the rows equal those at T.
func TestPostgresPointInTimeRestore(t *testing.T) {
	pgbench(t, "-i", "-s", "1", "-q")
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	pgbench(t, "-T", "4", "-c", "2", "-n")
	at := psql(t, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	rowsAtT := psql(t, "SELECT count(*) FROM pgbench_history")
	time.Sleep(1500 * time.Millisecond)
	pgbench(t, "-T", "3", "-c", "2", "-n")
	after := psql(t, "SELECT count(*) FROM pgbench_history")
	if after == rowsAtT {
		t.Fatal("pgbench wrote nothing after T")
	}
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}

	target := filepath.Join(theLab.NodeRoot("server-2"), "pitr", "main")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(target)) })
	r := kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to", at, "--target-dir", target, "--node", "server-2", "--verify")
	if r.code != 0 {
		t.Fatalf("pg restore --verify: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"public.pgbench_history\t" + rowsAtT + " rows", "public.pgbench_accounts\t100000 rows", "recovered to "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("pg restore output lacks %q (rows at T %s, later %s):\n%s", want, rowsAtT, after, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(target), ".main.wal-stage")); !os.IsNotExist(err) {
		t.Errorf("the WAL stage is left behind after --verify: %v", err)
	}
	// Nothing is overwritten: the same target again is refused.
	r = kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--latest", "--target-dir", target, "--node", "server-2")
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore into a used directory: exit %d, %q", r.code, r.stderr)
	}
}

// Base backup retention, with the lab's policy (the default: the last 2
// and a week of dailies): a dry run removes nothing; prune removes the
// older base backups' records, their restic snapshots and the WAL before
// the oldest kept one's first file; and that one still restores to a time
// before the newest began.
func TestPostgresBaseBackupRetention(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	take := func() *basebackup.BaseBackup {
		t.Helper()
		if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
			t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		list, _, err := basebackup.List(ctx, store, lab.WALSource)
		if err != nil || len(list) == 0 {
			t.Fatalf("base backups: %v, %v", list, err)
		}
		return list[len(list)-1]
	}
	psql(t, "CREATE TABLE retention_e2e (id int)")
	take()
	psql(t, "INSERT INTO retention_e2e SELECT generate_series(1, 100)")
	b := take()
	psql(t, "INSERT INTO retention_e2e SELECT generate_series(1, 50)")
	at := psql(t, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	time.Sleep(1500 * time.Millisecond)
	psql(t, "INSERT INTO retention_e2e SELECT generate_series(1, 25)")
	c := take()

	all, _, err := basebackup.List(ctx, store, lab.WALSource)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]retention.Dated, 0, len(all))
	for _, x := range all {
		items = append(items, retention.Dated{Name: x.ID, Time: x.StopTime})
	}
	keep, remove := retention.Apply(items, agentconfig.DefaultBaseBackupRetention())
	if len(remove) == 0 {
		t.Fatalf("the policy removes none of %d base backups", len(all))
	}
	byID := map[string]*basebackup.BaseBackup{}
	for _, x := range all {
		byID[x.ID] = x
	}
	oldest := byID[keep[len(keep)-1].Name]
	if oldest.ID != b.ID {
		t.Fatalf("oldest kept base backup %s, want %s (taken by this test)", oldest.ID, b.ID)
	}
	// Where it starts, asked of PostgreSQL, not read from its label.
	firstWAL := psql(t, "SELECT pg_walfile_name('"+oldest.StartLSN+"')")
	walNames := func() []string {
		objs, err := store.List(ctx, "wal/"+lab.WALSource+"/")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range objs {
			names = append(names, strings.TrimSuffix(filepath.Base(o.Key), walobj.ObjectSuffix))
		}
		return names
	}
	walBefore := walNames()

	r := kubectlDR(t, nil, "pg", "prune", lab.WALSource, "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("pg prune --dry-run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var dry printers.BaseBackupPrune
	if err := json.Unmarshal([]byte(r.stdout), &dry); err != nil {
		t.Fatalf("pg prune -o json: %v\n%s", err, r.stdout)
	}
	var wouldRemove []string
	for _, it := range dry.Items {
		if it.Action == "remove" {
			wouldRemove = append(wouldRemove, it.ID)
		}
	}
	if !dry.DryRun || dry.FirstWAL != firstWAL || len(wouldRemove) != len(remove) || dry.WALFilesRemoved == 0 {
		t.Errorf("dry run: first WAL %s (want %s), would remove %v (want %v), %d WAL files", dry.FirstWAL, firstWAL, wouldRemove, remove, dry.WALFilesRemoved)
	}
	if after, _, _ := basebackup.List(ctx, store, lab.WALSource); len(after) != len(all) || len(walNames()) != len(walBefore) {
		t.Fatalf("the dry run removed something: %d of %d records, %d of %d WAL files", len(after), len(all), len(walNames()), len(walBefore))
	}

	r = kubectlDR(t, nil, "pg", "prune", lab.WALSource)
	if r.code != 0 {
		t.Fatalf("pg prune: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "WAL before "+firstWAL) || !strings.Contains(r.stdout, remove[0].Name) {
		t.Errorf("pg prune output:\n%s", r.stdout)
	}
	left, _, err := basebackup.List(ctx, store, lab.WALSource)
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs, snapIDs []string
	for _, x := range left {
		leftIDs, snapIDs = append(leftIDs, x.ID), append(snapIDs, x.SnapshotID)
	}
	if len(left) != len(keep) || !slices.Contains(leftIDs, b.ID) || !slices.Contains(leftIDs, c.ID) {
		t.Errorf("base backups left %v, want the %d kept (with %s and %s)", leftIDs, len(keep), b.ID, c.ID)
	}
	// pg ls lists what is left, as the store holds it.
	r = kubectlDR(t, nil, "pg", "ls", lab.WALSource, "-o", "json")
	var listed printers.BaseBackupList
	if err := json.Unmarshal([]byte(r.stdout), &listed); r.code != 0 || err != nil {
		t.Fatalf("pg ls -o json: exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	var listedIDs []string
	for _, it := range listed.Items {
		listedIDs = append(listedIDs, it.ID)
		if it.Source != lab.WALSource || it.StartLSN == "" || it.SizeBytes == 0 {
			t.Errorf("pg ls item %+v: want source %s, its WAL start and size", it, lab.WALSource)
		}
	}
	if !slices.Equal(listedIDs, leftIDs) {
		t.Errorf("pg ls: %v, want the records left, oldest first: %v", listedIDs, leftIDs)
	}
	if r = kubectlDR(t, nil, "pg", "ls"); r.code != 0 || !strings.Contains(r.stdout, "BASE BACKUP") || !strings.Contains(r.stdout, b.ID) {
		t.Errorf("pg ls: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r = kubectlDR(t, nil, "pg", "ls", "no-such-db"); r.code != 0 || !strings.Contains(r.stderr, "No base backups of no-such-db") || !strings.Contains(r.stderr, "Sources with base backups: "+lab.WALSource) {
		t.Errorf("pg ls of a source without base backups: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	var resticIDs []string
	for _, s := range resticSnapshots(t, "--tag", "pg="+lab.WALSource) {
		resticIDs = append(resticIDs, s.ID)
	}
	slices.Sort(resticIDs)
	slices.Sort(snapIDs)
	if !slices.Equal(resticIDs, snapIDs) {
		t.Errorf("restic snapshots of %s: %v, want those of the kept base backups %v", lab.WALSource, resticIDs, snapIDs)
	}
	names := walNames()
	if !slices.Contains(names, firstWAL) {
		t.Errorf("the oldest kept base backup's first WAL file %s was removed", firstWAL)
	}
	for _, n := range names {
		if walobj.Classify(n) == walobj.Segment && n < firstWAL {
			t.Errorf("WAL %s (before %s) is still in the store", n, firstWAL)
		}
	}

	target := filepath.Join(theLab.NodeRoot("server-2"), "pitr-retention", "main")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(target)) })
	r = kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to", at, "--target-dir", target, "--node", "server-2", "--verify")
	if r.code != 0 || !strings.Contains(r.stdout, "from base backup "+b.ID) || !strings.Contains(r.stdout, "public.retention_e2e\t150 rows") {
		t.Errorf("pg restore --to %s from the oldest kept base backup: exit %d\n%s\n%s", at, r.code, r.stdout, r.stderr)
	}
}

// Base backups on a schedule: the agent that has the database's data
// directory takes them itself, each is recorded only once its WAL is in
// the store, and the source's retention (here the last one) is applied
// after each.
func TestPostgresScheduledBaseBackup(t *testing.T) {
	store := labStore(t)
	before, _, err := basebackup.List(context.Background(), store, lab.WALSource)
	if err != nil {
		t.Fatal(err)
	}
	startExtraAgent(t, "basebackup-cron", "agent-1", func(c *agentconfig.Config) {
		c.NodeName = "basebackup-cron"
		c.Restic.CacheDir = filepath.Join(c.StateDir, "cache")
		// An empty spool of its own: the DaemonSet's agent ships pg-main.
		c.WAL.Sources = []agentconfig.WALSource{{
			Name: lab.WALSource, Spool: t.TempDir(), Connection: theLab.PGConnection(), PGData: theLab.PGData(),
			BaseBackupSchedule: "*/5 * * * * *", BaseBackupRetention: agentconfig.Retention{KeepLast: 1},
		}}
	})
	psql(t, "CREATE TABLE IF NOT EXISTS cron_e2e (id int)")
	isNew := func(b *basebackup.BaseBackup) bool {
		return !slices.ContainsFunc(before, func(o *basebackup.BaseBackup) bool { return o.ID == b.ID })
	}
	deadline := time.Now().Add(60 * time.Second)
	var b *basebackup.BaseBackup
	for {
		psql(t, "INSERT INTO cron_e2e VALUES (1)") // WAL to archive
		after, _, err := basebackup.List(context.Background(), store, lab.WALSource)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) > 0 && isNew(after[len(after)-1]) {
			b = after[len(after)-1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled base backup in 60 s")
		}
		time.Sleep(time.Second)
	}
	if b.Node != "basebackup-cron" || b.StartLSN == "" || b.StopLSN == "" || b.SnapshotID == "" || !strings.Contains(b.Label, "START WAL LOCATION") {
		t.Errorf("scheduled base backup record: %+v", b)
	}
	a, err := walobj.ListArchived(context.Background(), store, lab.WALSource)
	if err != nil || a.Newest < b.StopSegment {
		t.Errorf("base backup %s recorded before its WAL %s was in the store (newest %s)", b.ID, b.StopSegment, a.Newest)
	}
	// Retention runs right after the record is written.
	for {
		after, _, err := basebackup.List(context.Background(), store, lab.WALSource)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) == 1 && isNew(after[0]) {
			return
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("retention (keep the last 1) after scheduled base backups left %d base backups", len(after))
		}
		time.Sleep(time.Second)
	}
}

func labStore(t *testing.T) objstore.Store {
	t.Helper()
	store, err := objstore.Open(objstore.Config{URL: theLab.StoreURL(), Endpoint: labEnv(t, "DR_S3_ENDPOINT"), AccessKey: theLab.State.MinIOUser, SecretKey: theLab.State.MinIOSecret})
	if err != nil {
		t.Fatal(err)
	}
	return store.Sub(theLab.State.ClusterID)
}

// isSegment reports whether data starts with the long page header of the
// named 16 MiB segment: xlp_pageaddr (bytes 8-16, little-endian) is the
// segment's first LSN.
func isSegment(data []byte, name string) bool {
	if len(data) < 16 {
		return false
	}
	log, err1 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if err1 != nil || err2 != nil {
		return false
	}
	return binary.LittleEndian.Uint64(data[8:16]) == log<<32|seg*(16<<20)
}
