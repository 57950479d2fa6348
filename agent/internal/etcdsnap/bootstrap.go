package etcdsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// keepBootstrap uploads the node's bootstrap files, encrypted to the
// snapshot key, beside the snapshot; nil when the node has none.
func (s *Snapshotter) keepBootstrap(ctx context.Context, snap *dbsnap.Snapshot) (*dbsnap.Bootstrap, error) {
	files := map[string][]byte{}
	var names []string
	for _, rel := range dbsnap.BootstrapFiles() {
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
		return &dbsnap.Bootstrap{Skipped: "no snapshot key configured: the server token is not kept in the store in the clear; keep " + names[0] + " yourself"}, nil
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
	key := dbsnap.BootstrapKey(snap.Node, snap.Name)
	n, err := s.Store.Put(ctx, key, bytes.NewReader(enc.Bytes()), int64(enc.Len()))
	if err != nil {
		return nil, fmt.Errorf("upload bootstrap files: %w", err)
	}
	if n != int64(enc.Len()) {
		return nil, fmt.Errorf("upload bootstrap files: store holds %d bytes, %d were sent", n, enc.Len())
	}
	sum := sha256.Sum256(enc.Bytes())
	return &dbsnap.Bootstrap{Files: names, StoreKey: key, StoredSHA: hex.EncodeToString(sum[:])}, nil
}
