package dbsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// ErrExists means a snapshot of that name is in the store already.
var ErrExists = errors.New("a snapshot of that name is in the store already")

// Put uploads the snapshot file at path as snap, the way an agent's save
// does: compressed, then encrypted to recipient (nil stores it
// unencrypted, marked so), checked against snap.Size and snap.SHA256 as it
// is read, the stored object checked by its size, and the record written
// last, signed by sign (nil: unsigned). Nothing is listed unless all of it
// succeeded; a failed upload's object is removed.
func Put(ctx context.Context, store objstore.Store, snap *Snapshot, path string, recipient age.Recipient, sign *signature.Signer) error {
	if err := ValidateName(snap.Name); err != nil {
		return err
	}
	if _, err := store.Stat(ctx, MetaKey(snap.Node, snap.Name)); err == nil {
		return fmt.Errorf("%w: %s (node %s)", ErrExists, snap.Name, snap.Node)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	snap.Compression = "zstd"
	snap.Encryption = ""
	if recipient != nil {
		snap.Encryption = "age"
	}
	snap.StoreKey = DataKey(snap.Node, snap.Name, snap.Encrypted())

	pr, pw := io.Pipe()
	stored := &hashCount{h: sha256.New()}
	raw := &hashCount{h: sha256.New()}
	go func() { pw.CloseWithError(encode(io.MultiWriter(pw, stored), io.TeeReader(f, raw), recipient)) }()
	n, err := store.Put(ctx, snap.StoreKey, pr, -1)
	pr.CloseWithError(err)
	if err == nil && (raw.n != snap.Size || hex.EncodeToString(raw.h.Sum(nil)) != snap.SHA256) {
		err = fmt.Errorf("%w: %s changed while it was uploaded (%d bytes read, %d verified)", ErrChecksum, path, raw.n, snap.Size)
	}
	if err == nil && n != stored.n {
		err = fmt.Errorf("verify upload of %s: store holds %d bytes, %d were sent", snap.StoreKey, n, stored.n)
	}
	if err == nil {
		var info objstore.ObjectInfo
		if info, err = store.Stat(ctx, snap.StoreKey); err == nil && info.Size != stored.n {
			err = fmt.Errorf("verify upload of %s: store holds %d bytes, %d were sent", snap.StoreKey, info.Size, stored.n)
		}
	}
	if err != nil {
		store.Delete(context.WithoutCancel(ctx), snap.StoreKey)
		return fmt.Errorf("upload %s: %w", snap.Name, err)
	}
	snap.StoredSize, snap.StoredSHA256 = stored.n, hex.EncodeToString(stored.h.Sum(nil))
	snap.Uploaded = true
	snap.Version = drstore.FormatVersion
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	if err := signature.Put(ctx, store, sign, MetaKey(snap.Node, snap.Name), data); err != nil {
		store.Delete(context.WithoutCancel(ctx), snap.StoreKey)
		snap.Uploaded = false
		return fmt.Errorf("write snapshot metadata of %s: %w", snap.Name, err)
	}
	return nil
}

// encode writes r to w compressed and, with a recipient, encrypted: the
// stored object's format (Stream reads it back).
func encode(w io.Writer, r io.Reader, recipient age.Recipient) error {
	out := w
	var enc io.WriteCloser
	if recipient != nil {
		var err error
		if enc, err = age.Encrypt(w, recipient); err != nil {
			return fmt.Errorf("encrypt snapshot: %w", err)
		}
		out = enc
	}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if _, err := io.Copy(zw, r); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if enc != nil {
		return enc.Close()
	}
	return nil
}

type hashCount struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *hashCount) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
