package etcdsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/mem"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// uploader compresses (and, with a recipient, encrypts) the raw snapshot
// bytes written to it and streams them to the store as they come.
type uploader struct {
	pw     *io.PipeWriter
	zw     *zstd.Encoder
	enc    io.WriteCloser // age, or nil
	stored *countingHash
	sink   *sink
	done   chan error // the store's Put
	// Compression runs in its own goroutine, fed chunks through ch, so it
	// overlaps with the local write and the checksum.
	ch         chan chunk
	compressed chan error
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func startUpload(ctx context.Context, store objstore.Store, key string, recipient age.Recipient) (*uploader, error) {
	pr, pw := io.Pipe()
	u := &uploader{pw: pw, stored: &countingHash{h: sha256.New()}, done: make(chan error, 1)}
	// The reader side runs first: age writes its header at once.
	go func() {
		_, err := store.Put(ctx, key, pr, -1)
		// Unblock the writer side if the upload ended early.
		pr.CloseWithError(fmt.Errorf("upload ended: %v", err))
		u.done <- err
	}()
	// What the store receives is hashed on its way out. A failed upload
	// must not fail the writers above it (the local copy goes on), so the
	// pipe's error is kept aside for Finish.
	u.sink = &sink{w: pw}
	var out io.Writer = io.MultiWriter(u.sink, u.stored)
	if recipient != nil {
		enc, err := age.Encrypt(out, recipient)
		if err != nil {
			pw.CloseWithError(err)
			<-u.done
			return nil, fmt.Errorf("encrypt snapshot: %w", err)
		}
		u.enc, out = enc, enc
	}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		pw.CloseWithError(err)
		<-u.done
		return nil, fmt.Errorf("zstd: %w", err)
	}
	u.zw = zw
	u.ch = make(chan chunk, 32)
	u.compressed = make(chan error, 1)
	go func() {
		var err error
		for c := range u.ch {
			if err == nil {
				_, err = u.zw.Write(c.b)
			}
			if c.buf != nil {
				c.buf.Free()
			}
		}
		u.compressed <- err
	}()
	return u, nil
}

// chunk is raw bytes for the compressor and the buffer they live in, if
// any, freed once they are compressed.
type chunk struct {
	b   []byte
	buf mem.Buffer
}

// send hands b (a window on buf, or buf nil) to the compressor without a
// copy: the caller must not touch either again. Sending never fails: a
// failed upload must not stop the local copy; the first error is kept
// for Finish.
func (u *uploader) send(b []byte, buf mem.Buffer) { u.ch <- chunk{b, buf} }

// Write sends a copy of p (for callers that reuse p).
func (u *uploader) Write(p []byte) (int, error) {
	b := streamBuffers.Get(len(p))
	copy(*b, p)
	u.send(*b, mem.NewBuffer(b, streamBuffers))
	return len(p), nil
}

// Finish flushes and waits for the upload; it returns the stored size and
// sha256.
func (u *uploader) Finish() (int64, string, error) {
	close(u.ch)
	err := <-u.compressed
	if err == nil {
		err = u.zw.Close()
	}
	if err == nil && u.enc != nil {
		err = u.enc.Close()
	}
	if err != nil {
		u.pw.CloseWithError(err)
		<-u.done
		return 0, "", err
	}
	u.pw.Close()
	if err := <-u.done; err != nil {
		return 0, "", err
	}
	if u.sink.err != nil {
		return 0, "", u.sink.err
	}
	return u.stored.n, hex.EncodeToString(u.stored.h.Sum(nil)), nil
}

// Abort stops the upload; the store never completes the object.
func (u *uploader) Abort(cause error) {
	close(u.ch)
	<-u.compressed
	u.zw.Close()
	u.pw.CloseWithError(cause)
	<-u.done
}

// sink writes to w until the first error, then drops what follows.
type sink struct {
	w   io.Writer
	err error
}

func (s *sink) Write(p []byte) (int, error) {
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}
