package files

import (
	"context"
	"errors"
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
