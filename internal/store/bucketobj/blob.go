package bucketobj

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// ErrChanged means an object changed while it was read (its size is not
// the one it was opened with): nothing was recorded, read it again.
var ErrChanged = errors.New("object changed while it was read")

// ErrCorrupt means a blob's bytes are not the ones recorded for it.
var ErrCorrupt = errors.New("bucket copy is corrupt")

// DefaultMemLimit: objects up to this size wait for their upload in
// memory, bigger ones in a file, so that memory does not grow with an
// object's size.
const DefaultMemLimit = 1 << 20

// Saved is where Save put an object's bytes.
type Saved struct {
	SHA256, MD5 string
	Size        int64
	// Blob is the blob's key under Dir(source).
	Blob string
	// Uploaded is how many bytes went to the store: 0 when the blob was
	// there already (the same bytes under another key or time).
	Uploaded int64
}

// BlobWriter stores objects' bytes as the source's blobs.
type BlobWriter struct {
	// Store is the cluster's directory of the backup store.
	Store  objstore.Store
	Source string
	// Recipient encrypts blobs (the snapshot recipient); nil stores them
	// as they are.
	Recipient age.Recipient
	// SpoolDir holds objects bigger than MemLimit until they are uploaded
	// (default the system's temporary directory).
	SpoolDir string
	MemLimit int
	// Known returns the blob already stored with this sha256, if the
	// caller knows one ("" otherwise). A caller that knows every blob its
	// index names sets it: an unknown blob is then uploaded without asking
	// the store first (a blob stored by a pass that never finished is
	// uploaded again, whole); without Known every blob is asked for.
	Known func(sha256hex string) string

	mu sync.Mutex
	// flight are the uploads going on, by blob key: the same bytes read
	// twice at once go up once; stored those done.
	flight map[string]*upload
	stored map[string]bool
}

type upload struct {
	done chan struct{}
	err  error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Save reads an object of size bytes (-1: unknown) from r, hashing and
// encrypting it on the way, and stores it as a blob unless the same bytes
// are stored already. Only a verified blob is reported: Store.Put checks
// the store's checksum of what it holds.
func (w *BlobWriter) Save(ctx context.Context, r io.Reader, size int64) (Saved, error) {
	limit := w.MemLimit
	if limit <= 0 {
		limit = DefaultMemLimit
	}
	sp := &spool{dir: w.SpoolDir, limit: limit}
	defer sp.close()
	sh, md := sha256.New(), md5.New()
	var dst io.WriteCloser = nopWriteCloser{sp}
	if w.Recipient != nil {
		enc, err := age.Encrypt(sp, w.Recipient)
		if err != nil {
			return Saved{}, fmt.Errorf("encrypt: %w", err)
		}
		dst = enc
	}
	n, err := io.Copy(io.MultiWriter(dst, sh, md), r)
	if err != nil {
		return Saved{}, err
	}
	if size >= 0 && n != size {
		return Saved{}, fmt.Errorf("%w: read %d bytes of %d", ErrChanged, n, size)
	}
	if err := dst.Close(); err != nil {
		return Saved{}, fmt.Errorf("encrypt: %w", err)
	}
	if sp.err != nil {
		return Saved{}, sp.err
	}
	s := Saved{SHA256: hex.EncodeToString(sh.Sum(nil)), MD5: hex.EncodeToString(md.Sum(nil)), Size: n}
	s.Blob = BlobKey(s.SHA256, w.Recipient != nil)
	if w.Known != nil {
		if b := w.Known(s.SHA256); b != "" {
			s.Blob = b
			return s, nil
		}
	}
	for {
		w.mu.Lock()
		if w.stored[s.Blob] {
			w.mu.Unlock()
			return s, nil
		}
		u, busy := w.flight[s.Blob]
		if !busy {
			if w.flight == nil {
				w.flight = map[string]*upload{}
			}
			u = &upload{done: make(chan struct{})}
			w.flight[s.Blob] = u
		}
		w.mu.Unlock()
		if !busy {
			s.Uploaded, u.err = w.put(ctx, s.Blob, sp)
			w.mu.Lock()
			delete(w.flight, s.Blob)
			if u.err == nil {
				if w.stored == nil {
					w.stored = map[string]bool{}
				}
				w.stored[s.Blob] = true
			}
			w.mu.Unlock()
			close(u.done)
			return s, u.err
		}
		select {
		case <-u.done:
		case <-ctx.Done():
			return Saved{}, ctx.Err()
		}
		if u.err == nil {
			return s, nil
		}
	}
}

// put uploads the spooled blob unless the store has it.
func (w *BlobWriter) put(ctx context.Context, blob string, sp *spool) (int64, error) {
	key := Dir(w.Source) + blob
	if w.Known == nil {
		if _, err := w.Store.Stat(ctx, key); err == nil {
			return 0, nil
		} else if !errors.Is(err, objstore.ErrNotFound) {
			return 0, err
		}
	}
	body, err := sp.reader()
	if err != nil {
		return 0, err
	}
	if _, err := w.Store.Put(ctx, key, body, sp.n); err != nil {
		return 0, err
	}
	return sp.n, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// spool keeps what is written in memory up to limit bytes, then in a
// temporary file.
type spool struct {
	dir   string
	limit int
	buf   *bytes.Buffer
	f     *os.File
	n     int64
	err   error
}

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && s.buf == nil {
		s.buf = bufPool.Get().(*bytes.Buffer)
		s.buf.Reset()
	}
	if s.f == nil && s.buf.Len()+len(p) > s.limit {
		f, err := os.CreateTemp(s.dir, "dr-bucket-*.spool")
		if err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return 0, s.err
		}
		s.f = f
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return 0, s.err
		}
		s.buf.Reset()
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
	} else {
		n, err = s.buf.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		s.err = fmt.Errorf("spool: %w", err)
	}
	return n, s.err
}

func (s *spool) reader() (io.Reader, error) {
	if s.f != nil {
		return io.NewSectionReader(s.f, 0, s.n), nil
	}
	if s.buf == nil {
		return strings.NewReader(""), nil
	}
	return bytes.NewReader(s.buf.Bytes()), nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
	if s.buf != nil && s.buf.Cap() <= 4*s.limit {
		bufPool.Put(s.buf)
	}
}

// Open reads a version's bytes back, decrypted with identity, and checks
// them: the reader fails at its end (ErrCorrupt) when they are not the
// bytes recorded, so write them nowhere final before it returned io.EOF.
func Open(ctx context.Context, st objstore.Store, source string, v Version, identity age.Identity) (io.ReadCloser, error) {
	if v.Deleted {
		return nil, fmt.Errorf("%q is a deletion: it has no bytes", v.Key)
	}
	r, c, err := openStored(ctx, st, source, v.Blob, v.Key, identity)
	if err != nil {
		return nil, err
	}
	if IsPack(v.Blob) {
		// Read many versions of one pack with ReadEach: this reads the
		// pack up to the version's bytes.
		if _, err := io.CopyN(io.Discard, r, v.Offset); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: pack %s ends before %q at offset %d: %v", ErrCorrupt, v.Blob, v.Key, v.Offset, err)
		}
		r = io.LimitReader(r, v.Size)
	}
	return &checked{r: r, c: c, h: sha256.New(), v: v}, nil
}

type checked struct {
	r io.Reader
	c io.Closer
	h hash.Hash
	n int64
	v Version
}

func (c *checked) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.v.Size {
		return n, fmt.Errorf("%w: %q is longer than its %d bytes", ErrCorrupt, c.v.Key, c.v.Size)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); c.n != c.v.Size || got != c.v.SHA256 {
			return n, fmt.Errorf("%w: %q reads back as %d bytes with sha256 %s, recorded as %d bytes with %s", ErrCorrupt, c.v.Key, c.n, got, c.v.Size, c.v.SHA256)
		}
	}
	return n, err
}

func (c *checked) Close() error { return c.c.Close() }
