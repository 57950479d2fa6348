package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
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
	if err := dbsnap.Put(context.Background(), root.Sub("c1"), snap, file, id.Recipient(), nil); err != nil {
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
			"--data-dir", dataDir, "--state-dir", filepath.Join(dir, "state"), "--allow-unsigned"}, extra...))
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

// dr-agent etcd restore trusts a snapshot only as its node signed it,
// checked against --ca-file: a changed record, one signed by another
// node's certificate, and an unsigned one are refused by name, the last
// accepted with --allow-unsigned; nothing is changed by any of them.
func TestEtcdRestoreChecksTheRecordsSignature(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ca, caPair, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, caPair.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	nodeSigner := func(node string) *signature.Signer {
		kp, err := ca.Issue(pki.LeafOptions{CommonName: pki.NodeDNSName(node), DNSNames: pki.NodeDNSNames(node), Server: true})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		sign, err := signature.FromKeyPair(pair)
		if err != nil {
			t.Fatal(err)
		}
		return sign
	}
	storeURL := "file://" + filepath.Join(dir, "store")
	root, err := objstore.Open(objstore.Config{URL: storeURL})
	if err != nil {
		t.Fatal(err)
	}
	store := root.Sub("c1")
	data := bytes.Repeat([]byte("snapshot "), 100)
	file := filepath.Join(dir, "snap.db")
	os.WriteFile(file, data, 0o600)
	sum := sha256.Sum256(data)
	put := func(name string, sign *signature.Signer) *dbsnap.Snapshot {
		snap := &dbsnap.Snapshot{Name: name, Node: "server-1", Created: time.Now().UTC().Truncate(time.Second), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		if err := dbsnap.Put(ctx, store, snap, file, nil, sign); err != nil {
			t.Fatal(err)
		}
		return snap
	}
	dataDir := filepath.Join(dir, "k3s")
	os.MkdirAll(filepath.Join(dataDir, "server", "db", "etcd"), 0o700)
	run := func(name string, extra ...string) (string, error) {
		var out, errOut bytes.Buffer
		cmd := NewRootCmd(&out, &errOut)
		cmd.SetArgs(append([]string{"etcd", "restore", "--snapshot", name, "--store", storeURL, "--cluster-id", "c1",
			"--data-dir", dataDir, "--state-dir", filepath.Join(dir, "state"), "--ca-file", caFile}, extra...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}

	signed := put("cli-server-1-signed", nodeSigner("server-1"))
	if _, err := store.Stat(ctx, dbsnap.MetaKey("server-1", signed.Name)+signature.Suffix); err != nil {
		t.Fatalf("the signed record has no signature beside it: %v", err)
	}
	if out, err := run(signed.Name); err != nil || !strings.Contains(out, "Nothing was changed") {
		t.Errorf("a record its node signed: %v\n%s", err, out)
	}

	// The record rewritten to name other bytes keeps its old signature.
	changed := put("cli-server-1-changed", nodeSigner("server-1"))
	key := dbsnap.MetaKey("server-1", changed.Name)
	rc, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	forged := bytes.Replace(raw, []byte(changed.SHA256), []byte(strings.Repeat("0", 64)), 1)
	if _, err := store.Put(ctx, key, bytes.NewReader(forged), int64(len(forged))); err != nil {
		t.Fatal(err)
	}
	if _, err := run(changed.Name); err == nil || !strings.Contains(err.Error(), "changed after it was signed") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("a changed record: %v; want it refused as changed after it was signed", err)
	}
	if _, err := run(changed.Name, "--allow-unsigned"); err == nil || !strings.Contains(err.Error(), "changed after it was signed") {
		t.Errorf("a changed record with --allow-unsigned: %v; want it refused still", err)
	}

	other := put("cli-server-1-other", nodeSigner("worker-1"))
	if _, err := run(other.Name); err == nil || !strings.Contains(err.Error(), "belongs to node server-1 but is signed by") {
		t.Errorf("a record signed by another node: %v; want it refused, naming both", err)
	}

	unsigned := put("cli-server-1-unsigned", nil)
	if _, err := run(unsigned.Name); err == nil || !strings.Contains(err.Error(), "is not signed") || !strings.Contains(err.Error(), "--allow-unsigned") {
		t.Errorf("an unsigned record: %v; want it refused, saying --allow-unsigned", err)
	}
	if out, err := run(unsigned.Name, "--allow-unsigned"); err != nil || !strings.Contains(out, "Nothing was changed") {
		t.Errorf("an unsigned record with --allow-unsigned: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "server", "db", "etcd")); len(entries) != 0 {
		t.Errorf("the data dir was changed: %v", entries)
	}
}
