package files

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// Restores share the node's slot (a recovery restores a node's files and
// its database at once); a backup runs alone; two restores into the
// node's own paths take turns.
func TestSlotRestoresShareBackupsRunAlone(t *testing.T) {
	e := &Engine{}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := e.share(short()); err != nil {
		t.Fatal(err)
	}
	if err := e.share(short()); err != nil {
		t.Fatalf("a second restore beside the first: %v", err)
	}
	if err := e.lockLive(short()); err != nil {
		t.Fatalf("a restore into the live paths beside two restores: %v", err)
	}
	if err := e.lockLive(short()); !errors.Is(err, ErrBusy) {
		t.Errorf("a second restore into the live paths: %v, want ErrBusy", err)
	}
	if err := e.lock(short()); !errors.Is(err, ErrBusy) {
		t.Errorf("a backup while restores run: %v, want ErrBusy", err)
	}
	e.unlockLive()
	e.unshare()
	e.unshare()

	if err := e.lock(short()); err != nil {
		t.Fatalf("a backup on an idle node: %v", err)
	}
	if err := e.share(short()); !errors.Is(err, ErrBusy) {
		t.Errorf("a restore while a backup runs: %v, want ErrBusy", err)
	}
	if err := e.lockLive(short()); !errors.Is(err, ErrBusy) {
		t.Errorf("a restore into the live paths while a backup runs: %v, want ErrBusy", err)
	}
	// The failed lockLive gave its share back: the backup ends, a restore
	// into the live paths gets its turn.
	e.unlock()
	if err := e.lockLive(short()); err != nil {
		t.Fatalf("after the backup: %v", err)
	}
	e.unlockLive()

	// A backup waiting for running restores goes before restores that
	// come after it.
	if err := e.share(short()); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := e.lock(ctx)
		if err == nil {
			e.unlock()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := e.share(short()); !errors.Is(err, ErrBusy) {
		t.Errorf("a restore after a waiting backup: %v, want ErrBusy (the backup goes first)", err)
	}
	e.unshare()
	if err := <-got; err != nil {
		t.Errorf("the waiting backup: %v", err)
	}
}

// A directory restored into the node's own paths (a database's data
// directory on a volume that is backed up too) waits for a restore into
// them; one restored elsewhere (a drill's scratch) goes beside it.
func TestRestoreDirTakesTheLiveTurnOnlyInTheNodesPaths(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := t.TempDir()
	write(t, filepath.Join(data, "db", "PG_VERSION"), "16\n")
	e := f.engine(t, "n1", data)
	res, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.lockLive(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = e.RestoreDir(short, res.Summary.SnapshotID, filepath.Join(data, "db"), filepath.Join(data, "db-restored"), "", nil)
	if !errors.Is(err, ErrBusy) {
		t.Errorf("into the node's paths while a restore runs there: %v, want ErrBusy", err)
	}
	// A drill's scratch standing in for a directory in the node's paths
	// waits too.
	short2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	err = e.RestoreDir(short2, res.Summary.SnapshotID, filepath.Join(data, "db"), filepath.Join(t.TempDir(), "scratch"), filepath.Join(data, "db"), nil)
	if !errors.Is(err, ErrBusy) {
		t.Errorf("into scratch in place of the node's paths while a restore runs there: %v, want ErrBusy", err)
	}
	scratch := filepath.Join(t.TempDir(), "scratch")
	if err := e.RestoreDir(ctx, res.Summary.SnapshotID, filepath.Join(data, "db"), scratch, "", nil); err != nil {
		t.Fatalf("into scratch while a restore runs in the node's paths: %v", err)
	}
	if got := read(t, filepath.Join(scratch, "PG_VERSION")); got != "16\n" {
		t.Errorf("restored PG_VERSION %q", got)
	}
	e.unlockLive()
}
