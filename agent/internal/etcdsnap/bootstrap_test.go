package etcdsnap

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func TestBootstrapFilesKeptEncrypted(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	token := "K10abc::server:s3cret-token"
	if err := os.MkdirAll(filepath.Join(dataDir, "server", "cred"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "server", "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshotter{Node: "server-1", Layout: Layout{DataDir: dataDir}, Store: store, Recipient: id.Recipient()}
	snap := &dbsnap.Snapshot{Name: "snap-1", Node: "server-1"}
	if snap.Bootstrap, err = s.keepBootstrap(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if snap.Bootstrap == nil || len(snap.Bootstrap.Files) != 1 || snap.Bootstrap.Files[0] != "server/token" {
		t.Fatalf("bootstrap record %+v, want server/token kept", snap.Bootstrap)
	}
	rc, err := store.Get(ctx, snap.Bootstrap.StoreKey)
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	stored.ReadFrom(rc)
	rc.Close()
	if bytes.Contains(stored.Bytes(), []byte("s3cret")) {
		t.Fatalf("the token is in the store in the clear")
	}
	files, err := dbsnap.FetchBootstrap(ctx, store, snap, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(files["server/token"]) != token {
		t.Errorf("fetched token %q, want %q", files["server/token"], token)
	}

	other, _ := age.GenerateX25519Identity()
	if _, err := dbsnap.FetchBootstrap(ctx, store, snap, other); err == nil || !strings.Contains(err.Error(), "snapshot key") {
		t.Errorf("fetch with another key: %v, want a decrypt error naming the snapshot key", err)
	}
	bad := append(bytes.Clone(stored.Bytes()), 'x')
	if _, err := store.Put(ctx, snap.Bootstrap.StoreKey, bytes.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	if _, err := dbsnap.FetchBootstrap(ctx, store, snap, id); !errors.Is(err, dbsnap.ErrChecksum) {
		t.Errorf("fetch of a changed object: %v, want a checksum error", err)
	}

	// Without a snapshot key the token never leaves the node.
	s.Recipient = nil
	b, err := s.keepBootstrap(ctx, &dbsnap.Snapshot{Name: "snap-2", Node: "server-1"})
	if err != nil || b == nil || b.StoreKey != "" || !strings.Contains(b.Skipped, "no snapshot key") {
		t.Errorf("without a key: %+v, %v; want nothing stored and the reason", b, err)
	}
	if _, err := store.Stat(ctx, dbsnap.BootstrapKey("server-1", "snap-2")); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("bootstrap object stored without a key: %v", err)
	}
}
