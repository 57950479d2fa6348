package restoreplan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// encryptedSnapshot puts a snapshot encrypted to id's recipient in a
// file:// store, with its bootstrap files (the server token), as an agent
// that holds only the recipient writes them.
func encryptedSnapshot(t *testing.T, id *age.X25519Identity) (objstore.Store, *dbsnap.Snapshot) {
	t.Helper()
	dir := t.TempDir()
	store, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("etcd snapshot bytes "), 4096)
	file := filepath.Join(dir, "snap.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	snap := &dbsnap.Snapshot{Name: "key-test-server-1-1", Node: "server-1", Created: time.Now().UTC().Truncate(time.Second),
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	plain, _ := json.Marshal(map[string][]byte{"server/token": []byte("K10::server:secret\n")})
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	key := dbsnap.BootstrapKey(snap.Node, snap.Name)
	if _, err := store.Put(context.Background(), key, bytes.NewReader(enc.Bytes()), int64(enc.Len())); err != nil {
		t.Fatal(err)
	}
	bsum := sha256.Sum256(enc.Bytes())
	snap.Bootstrap = &dbsnap.Bootstrap{Files: []string{"server/token"}, StoreKey: key, StoredSHA: hex.EncodeToString(bsum[:])}
	if err := dbsnap.Put(context.Background(), store, snap, file, id.Recipient(), nil); err != nil {
		t.Fatal(err)
	}
	return store, snap
}

// The node holds no private key: a part that must decrypt is refused
// without the request's key (nothing written, the message says what to
// do), and with it the snapshot and the bootstrap files are decrypted and
// staged before the plan is saved, so running or resuming the plan needs
// no key. The key itself is written nowhere.
func TestPrepareDecryptsWithTheRequestsKeyOnly(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	store, snap := encryptedSnapshot(t, id)
	cfg := testConfig(t, agentconfig.FlavorK3s)
	req := Request{ID: "plan-key", Flavor: agentconfig.FlavorK3s, Role: RoleReset, NewHost: true, Bootstrap: BootstrapAll,
		Resolve: func(context.Context) (*dbsnap.Snapshot, error) { return snap, nil }}

	_, err = Prepare(context.Background(), cfg, store, req)
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "this restore needs the snapshot key: run it through kubectl dr, or give dr-agent etcd restore --snapshot-key-file") {
		t.Fatalf("prepare without the key: %v; want ErrNoKey saying what to do", err)
	}
	if _, err := PlansIn(cfg.StateDir).Load("plan-key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a plan was written without the key: %v", err)
	}

	req.Identity = id
	prepared, err := Prepare(context.Background(), cfg, store, req)
	if err != nil {
		t.Fatal(err)
	}
	p := prepared.Plan
	if err := dbsnap.VerifyLocal(p.SnapshotPath, snap); err != nil {
		t.Errorf("staged snapshot: %v", err)
	}
	token, err := os.ReadFile(filepath.Join(p.BootstrapDir, "server", "token"))
	if err != nil || string(token) != "K10::server:secret\n" {
		t.Errorf("staged token %q, %v", token, err)
	}
	saved, err := PlansIn(cfg.StateDir).Load(p.ID)
	if err != nil || saved.SnapshotPath != p.SnapshotPath || saved.BootstrapDir != p.BootstrapDir {
		t.Fatalf("saved plan %+v, %v", saved, err)
	}
	secret := id.String()
	filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte("AGE-SECRET-KEY-")) {
			t.Errorf("%s holds the snapshot key", path)
		}
		return nil
	})
}
