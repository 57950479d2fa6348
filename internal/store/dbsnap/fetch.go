package dbsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// ErrNoKey means an encrypted snapshot was fetched without its key.
var ErrNoKey = errors.New("snapshot is encrypted and no snapshot key was given")

// Fetch downloads a snapshot from the store into path, undoing encryption
// and compression in one pass, and checks both the stored and the raw
// sha256 before the file appears under its name (it is written to .part
// first). identity may be nil for unencrypted snapshots.
func Fetch(ctx context.Context, store objstore.Store, snap *Snapshot, identity age.Identity, path string, opts ...FetchOption) error {
	return fetch(ctx, store, snap, identity, path, true, opts...)
}

// A FetchOption changes how Fetch reports.
type FetchOption func(*fetchOptions)

type fetchOptions struct {
	progress func(done int64)
}

// WithProgress calls fn with the raw bytes written so far as they are
// written (from the copy's goroutine; fn must be quick).
func WithProgress(fn func(done int64)) FetchOption {
	return func(o *fetchOptions) { o.progress = fn }
}

// progressWriter reports the bytes written through it.
type progressWriter struct {
	w    io.Writer
	done int64
	fn   func(int64)
}

func (c *progressWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.done += int64(n)
	c.fn(c.done)
	return n, err
}

// FetchCache is Fetch for a copy that is checked again before it is used
// and deleted after (a restore's): it is not fsynced, so a restore does
// not write the snapshot to disk twice (the restored data dir is synced).
func FetchCache(ctx context.Context, store objstore.Store, snap *Snapshot, identity age.Identity, path string) error {
	return fetch(ctx, store, snap, identity, path, false)
}

func fetch(ctx context.Context, store objstore.Store, snap *Snapshot, identity age.Identity, path string, sync bool, fopts ...FetchOption) error {
	var fo fetchOptions
	for _, o := range fopts {
		o(&fo)
	}
	if err := durable.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Stream checks both checksums itself.
	opts := []durable.Option{durable.WithHash(nil)}
	if !sync {
		opts = append(opts, durable.NoSync())
	}
	f, err := durable.Create(path, 0o600, opts...)
	if err != nil {
		return err
	}
	defer f.Abort()
	var w io.Writer = f
	if fo.progress != nil {
		w = &progressWriter{w: f, fn: fo.progress}
	}
	if err := Stream(ctx, store, snap, identity, w); err != nil {
		return err
	}
	return f.Commit()
}

// Stream writes the snapshot's raw bytes to w as they come from the store
// (download, decryption and decompression in one pass) and then checks
// both the stored and the raw sha256 and the size: w has had bytes that
// are not the snapshot unless Stream returns nil (ErrChecksum names a
// mismatch). identity may be nil for unencrypted snapshots.
func Stream(ctx context.Context, store objstore.Store, snap *Snapshot, identity age.Identity, w io.Writer) error {
	if snap.Encrypted() && identity == nil {
		return fmt.Errorf("%s: %w: give --key-file (the snapshot key kept when installing)", snap.Name, ErrNoKey)
	}
	rc, err := store.Get(ctx, snap.StoreKey)
	if err != nil {
		return fmt.Errorf("download %s: %w", snap.Name, err)
	}
	defer rc.Close()
	stored := sha256.New()
	teed := io.TeeReader(rc, stored)
	var r io.Reader = teed
	if snap.Encrypted() {
		if r, err = age.Decrypt(r, identity); err != nil {
			return fmt.Errorf("decrypt %s: %w (is it the right snapshot key?)", snap.Name, err)
		}
	}
	zr, err := zstd.NewReader(r)
	if err != nil {
		return fmt.Errorf("decompress %s: %w", snap.Name, err)
	}
	defer zr.Close()

	// The raw sha256 runs beside the writes, on its own core.
	raw := newAsyncHash(sha256.New())
	out := &writeErr{w: w}
	// A damaged object could decode to far more than the snapshot: one
	// byte past its recorded size is enough to refuse it.
	var dec io.Reader = zr
	if snap.Size > 0 {
		dec = io.LimitReader(zr, snap.Size+1)
	}
	n, err := io.Copy(io.MultiWriter(out, raw), dec)
	rawSum := raw.Sum()
	if out.err != nil {
		return fmt.Errorf("write %s: %w", snap.Name, out.err)
	}
	if snap.Size > 0 && n > snap.Size {
		return fmt.Errorf("%w: %s decodes to more than the %d bytes recorded", ErrChecksum, snap.Name, snap.Size)
	}
	if err == nil {
		// Drain what the decoders did not need, so the stored hash covers
		// the whole object.
		_, err = io.Copy(io.Discard, r)
	}
	if err != nil {
		// A damaged object fails to decode before its checksum can be
		// compared: read the rest, and name the mismatch when it is one.
		if _, cerr := io.Copy(io.Discard, teed); cerr == nil && snap.StoredSHA256 != "" {
			if got := hex.EncodeToString(stored.Sum(nil)); got != snap.StoredSHA256 {
				return fmt.Errorf("%w: stored object of %s has sha256 %s, metadata says %s (%v)", ErrChecksum, snap.Name, got, snap.StoredSHA256, err)
			}
		}
		return fmt.Errorf("download %s: %w", snap.Name, err)
	}
	if got := hex.EncodeToString(stored.Sum(nil)); snap.StoredSHA256 != "" && got != snap.StoredSHA256 {
		return fmt.Errorf("%w: stored object of %s has sha256 %s, metadata says %s", ErrChecksum, snap.Name, got, snap.StoredSHA256)
	}
	if got := hex.EncodeToString(rawSum); got != snap.SHA256 || n != snap.Size {
		return fmt.Errorf("%w: %s decoded to %d bytes with sha256 %s, metadata says %d bytes, %s", ErrChecksum, snap.Name, n, got, snap.Size, snap.SHA256)
	}
	return nil
}

// writeErr remembers its writer's error, to tell it from the download's.
type writeErr struct {
	w   io.Writer
	err error
}

func (e *writeErr) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// asyncHash hashes what is written to it in another goroutine, so that
// hashing overlaps with the writer's other work.
type asyncHash struct {
	h    hash.Hash
	ch   chan []byte
	free chan []byte
	done chan struct{}
}

func newAsyncHash(h hash.Hash) *asyncHash {
	a := &asyncHash{h: h, ch: make(chan []byte, 4), free: make(chan []byte, 8), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *asyncHash) Write(p []byte) (int, error) {
	var b []byte
	select {
	case b = <-a.free:
	default:
	}
	b = append(b[:0], p...)
	a.ch <- b
	return len(p), nil
}

// Sum waits for every write to be hashed; the hash takes no more writes.
func (a *asyncHash) Sum() []byte {
	close(a.ch)
	<-a.done
	return a.h.Sum(nil)
}

// VerifyStored reads the stored object back and checks its size and
// sha256 against the metadata. It needs no key: the checksum is of the
// bytes as stored.
func VerifyStored(ctx context.Context, store objstore.Store, snap *Snapshot) error {
	rc, err := store.Get(ctx, snap.StoreKey)
	if err != nil {
		return fmt.Errorf("read %s back: %w", snap.Name, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return fmt.Errorf("read %s back: %w", snap.Name, err)
	}
	if snap.StoredSHA256 == "" {
		return fmt.Errorf("%w: %s has no stored checksum in its metadata", ErrChecksum, snap.Name)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != snap.StoredSHA256 || (snap.StoredSize > 0 && n != snap.StoredSize) {
		return fmt.Errorf("%w: stored object of %s is %d bytes with sha256 %s, metadata says %d bytes, %s", ErrChecksum, snap.Name, n, got, snap.StoredSize, snap.StoredSHA256)
	}
	return nil
}

// VerifyLocal checks a snapshot file against the snapshot's metadata (raw
// size and sha256), as a restore does before it stops anything.
func VerifyLocal(path string, snap *Snapshot) error {
	if err := durable.Verify(path, snap.Size, snap.SHA256); err != nil {
		if errors.Is(err, durable.ErrMismatch) {
			return fmt.Errorf("%w: snapshot %s: %v", ErrChecksum, snap.Name, err)
		}
		return err
	}
	return nil
}
