package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// dr-agent etcd restore on a node, which holds no private key: an
// encrypted snapshot is refused without one, saying how to give it, and
// --snapshot-key-file - reads it from stdin.
func TestEtcdRestoreTakesTheKeyFromStdin(t *testing.T) {
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	storeURL := "file://" + filepath.Join(dir, "store")
	root, err := objstore.Open(objstore.Config{URL: storeURL})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("snapshot "), 100)
	file := filepath.Join(dir, "snap.db")
	os.WriteFile(file, data, 0o600)
	sum := sha256.Sum256(data)
	snap := &dbsnap.Snapshot{Name: "cli-server-1-1", Node: "server-1", Created: time.Now().UTC().Truncate(time.Second), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if err := dbsnap.Put(context.Background(), root.Sub("c1"), snap, file, id.Recipient()); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "k3s")
	os.MkdirAll(filepath.Join(dataDir, "server", "db", "etcd"), 0o700)
	t.Setenv("DR_SNAPSHOT_KEY", "")
	run := func(stdin string, extra ...string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := NewRootCmd(&out, &errOut)
		cmd.SetIn(strings.NewReader(stdin))
		cmd.SetArgs(append([]string{"etcd", "restore", "--latest", "--store", storeURL, "--cluster-id", "c1",
			"--data-dir", dataDir, "--state-dir", filepath.Join(dir, "state")}, extra...))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, err := run(""); err == nil || !strings.Contains(err.Error(), "this restore needs the snapshot key: run it through kubectl dr, or give dr-agent etcd restore --snapshot-key-file") {
		t.Errorf("without the key: %v; want the error saying how to give it", err)
	}
	out, err := run(id.String()+"\n", "--snapshot-key-file", "-")
	if err != nil || !strings.Contains(out, "snapshot "+snap.Name) || !strings.Contains(out, "Nothing was changed") {
		t.Errorf("with the key on stdin: %v\n%s", err, out)
	}
	if _, err := run("not a key\n", "--snapshot-key-file", "-"); err == nil || !strings.Contains(err.Error(), "not an age identity") || strings.Contains(err.Error(), "not a key") {
		t.Errorf("a bad key on stdin: %v; want it refused without quoting it", err)
	}
}
