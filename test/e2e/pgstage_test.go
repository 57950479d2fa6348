package e2e

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// A restore without --verify stages the WAL beside the data directory:
// nothing under the target's parent holds the store's secret key or the
// snapshot key, and PostgreSQL started on it later with the store down
// replays to the target. One segment it replays was stored in clear (the
// format before encryption): it restores as well.
func TestPostgresRestoreStagesWALAndStartsWithTheStoreDown(t *testing.T) {
	ctx := context.Background()
	store := labStore(t)
	id, err := theLab.SnapshotIdentity()
	if err != nil {
		t.Fatal(err)
	}
	psql(t, "CREATE TABLE IF NOT EXISTS stage_e2e (id serial, v text)")
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	psql(t, "INSERT INTO stage_e2e (v) SELECT md5(i::text) FROM generate_series(1, 30000) i")
	// The segment holding what is written at T: replay must pass it.
	atT := psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	psql(t, "INSERT INTO stage_e2e (v) VALUES ('at T')")
	at := psql(t, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`)
	rowsAtT := psql(t, "SELECT count(*) FROM stage_e2e")
	time.Sleep(1500 * time.Millisecond)
	psql(t, "INSERT INTO stage_e2e (v) SELECT md5(i::text) FROM generate_series(1, 30000) i")
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The segment at T, written again as an agent before encryption
	// stored it: in clear.
	key := "lab/" + theLab.State.ClusterID + "/" + walobj.Key(lab.WALSource, atT)
	if stored := storeObject(t, key); !bytes.HasPrefix(stored, []byte("drwal3 ")) {
		t.Fatalf("%s is not stored encrypted: %q", atT, stored[:min(len(stored), 60)])
	}
	plain := filepath.Join(t.TempDir(), atT)
	if err := walobj.Fetch(ctx, store, lab.WALSource, atT, plain, id); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(plain)
	enc, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	var clear bytes.Buffer
	if err := enc.Encode(&clear, raw); err != nil {
		t.Fatal(err)
	}
	putStoreObject(t, key, clear.Bytes())
	if !bytes.HasPrefix(storeObject(t, key), []byte("drwal2 ")) {
		t.Fatal("the clear object did not replace the encrypted one")
	}

	target := filepath.Join(theLab.NodeRoot("server-2"), "pitr-offline", "main")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(target)) })
	r := kubectlDR(t, nil, "pg", "restore", lab.WALSource, "--to", at, "--target-dir", target, "--node", "server-2")
	if r.code != 0 {
		t.Fatalf("pg restore: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	stage := filepath.Join(filepath.Dir(target), ".main.wal-stage")
	if !strings.Contains(r.stdout, "staged in "+stage) || !strings.Contains(r.stdout, "remove it once the database has promoted") {
		t.Errorf("pg restore does not say where the WAL is staged (%s) and that it can go after recovery:\n%s", stage, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(stage, atT)); err != nil {
		t.Errorf("the segment at T is not staged: %v", err)
	}

	// No credentials and no key beside the restore.
	secret := []byte(theLab.State.MinIOSecret)
	err = filepath.WalkDir(filepath.Dir(target), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, secret) {
			t.Errorf("%s holds the store's secret key", p)
		}
		if bytes.Contains(data, []byte("AGE-SECRET-KEY")) {
			t.Errorf("%s holds an age identity", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The store goes down; the restored database is started on its own.
	if err := theLab.StopProcess("minio"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := theLab.StartMinIO(context.Background()); err != nil {
			t.Errorf("start MinIO again: %v", err)
		}
	})
	spool := filepath.Join(t.TempDir(), "spool")
	port := freePort(t)
	if err := theLab.StartPostgres(ctx, "postgres-offline", target, port, spool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theLab.StopProcess("postgres-offline") })
	sql := func(q string) (string, error) {
		bin, _ := lab.PGBin("psql")
		cmd := exec.Command(bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q)
		cmd.Env = append(append(os.Environ(), theLab.Env()...), "PGPORT="+strconv.Itoa(port))
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		out, err := sql("SELECT pg_is_in_recovery()")
		if err == nil && out == "f" {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(theLab.Dir, "logs", "postgres-offline.log"))
			t.Fatalf("the restored database did not recover and promote in 2 minutes with the store down (%q, %v)\n%s", out, err, log)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got, err := sql("SELECT count(*) FROM stage_e2e"); err != nil || got != rowsAtT {
		t.Errorf("rows after replay with the store down: %q (%v), want %s as at T", got, err, rowsAtT)
	}
	if got, err := sql("SELECT count(*) FROM stage_e2e WHERE v = 'at T'"); err != nil || got != "1" {
		t.Errorf("the row written just before T: %q (%v), want 1", got, err)
	}
}
