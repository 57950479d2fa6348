package etcdsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
)

// BootstrapFiles are what a k3s server restored onto a new host needs
// besides the snapshot, relative to the data dir: the server token (k3s
// encrypts its bootstrap data in etcd with it) and, with secrets
// encryption on, the key that decrypts the cluster's Secrets.
var BootstrapFiles = []string{"server/token", "server/cred/encryption-config.json"}

// Bootstrap is the record of the bootstrap files kept with a snapshot.
type Bootstrap struct {
	// Files are the data-dir-relative paths kept.
	Files     []string `json:"files,omitempty"`
	StoreKey  string   `json:"storeKey,omitempty"`
	StoredSHA string   `json:"storedSHA256,omitempty"`
	// Skipped says why nothing was kept (no snapshot key: the token is
	// never stored in the clear).
	Skipped string `json:"skipped,omitempty"`
}

func bootstrapKey(node, file string) string { return path.Join("etcd", node, file+".bootstrap.age") }

// keepBootstrap uploads the node's bootstrap files, encrypted to the
// snapshot key, beside the snapshot; nil when the node has none.
func (s *Snapshotter) keepBootstrap(ctx context.Context, snap *Snapshot) (*Bootstrap, error) {
	files := map[string][]byte{}
	var names []string
	for _, rel := range BootstrapFiles {
		data, err := os.ReadFile(filepath.Join(s.Layout.DataDir, filepath.FromSlash(rel)))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rel, err)
		}
		files[rel] = data
		names = append(names, rel)
	}
	if len(files) == 0 {
		return nil, nil
	}
	if s.Recipient == nil {
		return &Bootstrap{Skipped: "no snapshot key configured: the server token is not kept in the store in the clear; keep " + names[0] + " yourself"}, nil
	}
	plain, err := json.Marshal(files)
	if err != nil {
		return nil, err
	}
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, s.Recipient)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	key := bootstrapKey(snap.Node, snap.Name)
	n, err := s.Store.Put(ctx, key, bytes.NewReader(enc.Bytes()), int64(enc.Len()))
	if err != nil {
		return nil, fmt.Errorf("upload bootstrap files: %w", err)
	}
	if n != int64(enc.Len()) {
		return nil, fmt.Errorf("upload bootstrap files: store holds %d bytes, %d were sent", n, enc.Len())
	}
	sum := sha256.Sum256(enc.Bytes())
	return &Bootstrap{Files: names, StoreKey: key, StoredSHA: hex.EncodeToString(sum[:])}, nil
}

// FetchBootstrap downloads and decrypts the bootstrap files kept with a
// snapshot, checked against their recorded sha256: data-dir-relative path
// to contents.
func FetchBootstrap(ctx context.Context, store objstore.Store, snap *Snapshot, identity age.Identity) (map[string][]byte, error) {
	b := snap.Bootstrap
	if b == nil || b.StoreKey == "" {
		reason := "the snapshot was taken on a node without them"
		if b != nil && b.Skipped != "" {
			reason = b.Skipped
		}
		return nil, fmt.Errorf("snapshot %s has no bootstrap files in the store: %s", snap.Name, reason)
	}
	if identity == nil {
		return nil, fmt.Errorf("snapshot %s: %w", snap.Name, ErrNoKey)
	}
	rc, err := store.Get(ctx, b.StoreKey)
	if err != nil {
		return nil, fmt.Errorf("download bootstrap files of %s: %w", snap.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("download bootstrap files of %s: %w", snap.Name, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != b.StoredSHA {
		return nil, fmt.Errorf("%w: bootstrap files of %s", ErrChecksum, snap.Name)
	}
	r, err := age.Decrypt(bytes.NewReader(data), identity)
	if err != nil {
		return nil, fmt.Errorf("decrypt bootstrap files of %s: %w (is it the right snapshot key?)", snap.Name, err)
	}
	var files map[string][]byte
	if err := json.NewDecoder(r).Decode(&files); err != nil {
		return nil, fmt.Errorf("bootstrap files of %s: %w", snap.Name, err)
	}
	return files, nil
}
