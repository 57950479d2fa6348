package dbsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// BootstrapFiles are what a k3s server restored onto a new host needs
// besides the snapshot, relative to the data dir: the server token (k3s
// encrypts its bootstrap data in etcd with it) and, with secrets
// encryption on, the key that decrypts the cluster's Secrets.
func BootstrapFiles() []string {
	return []string{"server/token", "server/cred/encryption-config.json"}
}

// CheckBootstrapPath refuses a path of a bootstrap bundle that is not one
// of BootstrapFiles, as the bundle names it (slash-separated, relative to
// the data dir): the agent writes the files it names as root, and a
// crafted bundle must not name anything else (an absolute path, "..", a
// file k3s does not keep). Only the exact names pass, never a spelling
// that cleans to one.
func CheckBootstrapPath(rel string) error {
	if slices.Contains(BootstrapFiles(), rel) {
		return nil
	}
	return fmt.Errorf("%w: %q is not a file k3s keeps in a bootstrap bundle (want one of %s)", ErrBootstrapPath, rel, strings.Join(BootstrapFiles(), ", "))
}

// ErrBootstrapPath is a bootstrap bundle naming a file it may not.
var ErrBootstrapPath = errors.New("bootstrap bundle refused")

// CheckBootstrapFiles checks every path of a decrypted bundle before any
// is written: one bad path refuses the whole bundle.
func CheckBootstrapFiles(files map[string][]byte) error {
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if err := CheckBootstrapPath(rel); err != nil {
			return err
		}
	}
	return nil
}

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

// BootstrapKey is where the bootstrap files kept with a snapshot live.
func BootstrapKey(node, file string) string { return path.Join("etcd", node, file+".bootstrap.age") }

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
	if err := CheckBootstrapFiles(files); err != nil {
		return nil, fmt.Errorf("bootstrap files of %s: %w; nothing was written", snap.Name, err)
	}
	return files, nil
}
