package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// openKine opens (creating) a kine database the way kine does.
func openKine(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB);
		CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`)
	return db, err
}

// benchValue is a value like fill's: a third random, the rest text.
func benchValue(rng *rand.Rand, size int) []byte {
	text := strings.Repeat(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench","namespace":"default"}}`, size/80+1)
	v := make([]byte, size)
	rng.Read(v[:size/3])
	copy(v[size/3:], text)
	return v
}

// kineFill grows the kine database at path to mib MiB of 128 KiB values.
func kineFill(path string, mib int) error {
	db, err := openKine(path)
	if err != nil {
		return err
	}
	defer db.Close()
	rng := rand.New(rand.NewSource(1))
	start := time.Now()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for i := 0; i < mib*8; i++ {
		if _, err := tx.Exec(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) VALUES (?, 1, 0, 0, 0, 0, ?)`, fmt.Sprintf("/bench/%06d", i), benchValue(rng, 128<<10)); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	fmt.Fprintf(os.Stderr, "wrote %d MiB in %s\n", mib, time.Since(start).Round(time.Second))
	return err
}

// kineWrite writes a 4 KiB row every interval until killed, as kine does
// under a steady load, and says how many writes took longer than slow.
func kineWrite(path string, interval time.Duration) error {
	db, err := openKine(path)
	if err != nil {
		return err
	}
	defer db.Close()
	rng := rand.New(rand.NewSource(2))
	for i := 0; ; i++ {
		start := time.Now()
		if _, err := db.Exec(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) VALUES (?, 0, 0, 0, 0, 0, ?)`, fmt.Sprintf("/load/%04d", i%1000), benchValue(rng, 4<<10)); err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
		if d := time.Since(start); d > time.Second {
			fmt.Fprintf(os.Stderr, "write %d took %s\n", i, d.Round(time.Millisecond))
		}
		time.Sleep(interval)
	}
}

// sqliteSnap is the agent's snapshot of a server on SQLite (what kubectl
// dr etcd snapshot save runs there), into the store of the environment.
func sqliteSnap(ctx context.Context, dataDir, keyFile string) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	s := &etcdsnap.Snapshotter{Node: "bench", Layout: etcdsnap.Layout{DataDir: dataDir}, Store: store.Sub("bench"), StateDir: filepath.Join(dataDir, "state")}
	if keyFile != "" {
		if s.Recipient, _, err = dbsnap.LoadRecipient(keyFile); err != nil {
			return err
		}
	}
	snap, err := s.Save(ctx, etcdsnap.SaveRequest{Name: "bench"})
	if err != nil {
		return err
	}
	if !snap.Uploaded {
		return fmt.Errorf("not uploaded: %s", snap.UploadError)
	}
	os.Remove(snap.LocalPath)
	fmt.Fprintf(os.Stderr, "snapshot %s: %d bytes, %d stored\n", snap.Name, snap.Size, snap.StoredSize)
	return nil
}
