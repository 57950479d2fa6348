package bucketobj

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Small objects are stored in packs: many objects' bytes, one after the
// other, in one store object (blobs/packs/ab/<random name>, .age
// when encrypted, as one age file). A version in a pack names the pack as
// its Blob and where its bytes start in it (Offset, in the decrypted
// pack). Ten thousand objects of 100 KiB are then about 130 uploads
// instead of ten thousand, and one age header (an X25519 exchange) per
// pack instead of one per object: fewer requests to the store (each
// costs at most S3 providers), less CPU on both sides.
const (
	// MaxPacked is the largest object that goes into a pack; bigger
	// ones are blobs of their own.
	MaxPacked = 1 << 20
	// DefaultPackSize is how full a pack gets before it is stored.
	DefaultPackSize = 8 << 20
)

var packRE = regexp.MustCompile(`^blobs/packs/([0-9a-f]{2})/([0-9a-f]{64})(\.age)?$`)

// PackKey is where the pack named name (64 hex digits) is, under Dir.
func PackKey(name string, encrypted bool) string {
	k := "blobs/packs/" + name[:2] + "/" + name
	if encrypted {
		k += ".age"
	}
	return k
}

// IsPack reports whether blob (a Version's Blob) names a pack.
func IsPack(blob string) bool {
	m := packRE.FindStringSubmatch(blob)
	return m != nil && strings.HasPrefix(m[2], m[1])
}

// PackWriter fills packs with small objects and stores each once it is
// full, or at Flush. It is safe for concurrent use. A version added is
// complete (its Blob set) only once the pack holding it is stored: after
// the Add that filled the pack, or Flush, returned without an error.
type PackWriter struct {
	// Store is the cluster's directory of the backup store.
	Store  objstore.Store
	Source string
	// Recipient encrypts packs; nil stores them as they are.
	Recipient age.Recipient
	// Size is how full a pack gets before it is stored (default
	// DefaultPackSize).
	Size int

	mu  sync.Mutex
	cur *pack
	// flight are the packs being stored, by the sha256 of the bytes in
	// them; done where bytes stored by this writer are: the same bytes
	// added again while or after their pack is stored are not stored
	// twice.
	flight map[string]*pack
	done   map[string]placed
	// storing counts the packs being encrypted and uploaded; while
	// packStores are, Adds wait (stored signals when one is done), so
	// memory stays at a pack being filled and packStores being stored.
	storing int
	stored  *sync.Cond
}

// packStores is how many packs are stored at once.
const packStores = 2

type placed struct {
	blob   string
	offset int64
}

type pack struct {
	buf     *bytes.Buffer
	entries []*Version
	at      map[string]int64 // sha256 -> offset, for the same bytes twice
}

var packPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Add puts data, the checked bytes of v (v.SHA256 and v.Size already
// set), into the pack being filled; v.Offset is set now and v.Blob when
// the pack is stored. The Add that fills the pack stores it before it
// returns (its error is then the pack's: every version in it failed).
// Bytes this writer has stored or is storing already are not added
// again: v is pointed at them (added is false).
func (w *PackWriter) Add(ctx context.Context, v *Version, data []byte) (added bool, err error) {
	if len(data) > MaxPacked {
		return false, fmt.Errorf("%q: %d bytes is too big for a pack (at most %d)", v.Key, len(data), MaxPacked)
	}
	size := w.Size
	if size <= 0 {
		size = DefaultPackSize
	}
	w.mu.Lock()
	if w.stored == nil {
		w.stored = sync.NewCond(&w.mu)
	}
	for w.storing >= packStores {
		w.stored.Wait()
	}
	if d, ok := w.done[v.SHA256]; ok {
		v.Blob, v.Offset = d.blob, d.offset
		w.mu.Unlock()
		return false, nil
	}
	if f := w.flight[v.SHA256]; f != nil {
		v.Offset = f.at[v.SHA256]
		f.entries = append(f.entries, v)
		w.mu.Unlock()
		return false, nil
	}
	if w.cur == nil {
		buf := packPool.Get().(*bytes.Buffer)
		buf.Reset()
		// Room for the pack at its fullest: a buffer that grows doubles.
		buf.Grow(size + MaxPacked)
		w.cur = &pack{buf: buf, at: map[string]int64{}}
	}
	p := w.cur
	if off, ok := p.at[v.SHA256]; ok {
		v.Offset = off
	} else {
		v.Offset = int64(p.buf.Len())
		p.at[v.SHA256] = v.Offset
		p.buf.Write(data)
		added = true
	}
	p.entries = append(p.entries, v)
	if p.buf.Len() < size {
		w.mu.Unlock()
		return added, nil
	}
	w.seal(p)
	w.mu.Unlock()
	return added, w.store(ctx, p)
}

// seal takes p out of filling into flight, to be stored; w.mu is held.
func (w *PackWriter) seal(p *pack) {
	w.storing++
	if w.cur == p {
		w.cur = nil
	}
	if w.flight == nil {
		w.flight = map[string]*pack{}
	}
	for sha := range p.at {
		w.flight[sha] = p
	}
}

// Flush stores the pack being filled, if any.
func (w *PackWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	p := w.cur
	if p == nil {
		w.mu.Unlock()
		return nil
	}
	if w.stored == nil {
		w.stored = sync.NewCond(&w.mu)
	}
	w.seal(p)
	w.mu.Unlock()
	return w.store(ctx, p)
}

// Discard drops the pack being filled (after a failed page: none of its
// versions is recorded).
func (w *PackWriter) Discard() {
	w.mu.Lock()
	p := w.cur
	w.cur = nil
	w.mu.Unlock()
	if p != nil {
		p.release()
	}
}

func (p *pack) release() {
	if p.buf.Cap() <= 4*DefaultPackSize {
		packPool.Put(p.buf)
	}
	p.buf = nil
}

// unflight ends p's store: its bytes are no longer in flight, and an Add
// waiting for a store to finish goes on.
func (w *PackWriter) unflight(p *pack) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.storing--
	w.stored.Broadcast()
	for sha := range p.at {
		if w.flight[sha] == p {
			delete(w.flight, sha)
		}
	}
}

// store encrypts and uploads p (sealed).
// A pack's name is random: two packs never share one, whatever they hold.
func (w *PackWriter) store(ctx context.Context, p *pack) error {
	defer p.release()
	defer w.unflight(p)
	var name [32]byte
	if _, err := rand.Read(name[:]); err != nil {
		return err
	}
	key := PackKey(hex.EncodeToString(name[:]), w.Recipient != nil)
	body := p.buf
	if w.Recipient != nil {
		enc := packPool.Get().(*bytes.Buffer)
		enc.Reset()
		enc.Grow(p.buf.Len() + p.buf.Len()/1024 + 1024)
		defer func() {
			if enc.Cap() <= 4*DefaultPackSize {
				packPool.Put(enc)
			}
		}()
		e, err := age.Encrypt(enc, w.Recipient)
		if err != nil {
			return fmt.Errorf("encrypt pack: %w", err)
		}
		if _, err := e.Write(p.buf.Bytes()); err != nil {
			return fmt.Errorf("encrypt pack: %w", err)
		}
		if err := e.Close(); err != nil {
			return fmt.Errorf("encrypt pack: %w", err)
		}
		body = enc
	}
	n := int64(body.Len())
	if _, err := w.Store.Put(ctx, Dir(w.Source)+key, bytes.NewReader(body.Bytes()), n); err != nil {
		return fmt.Errorf("store pack of %d objects: %w", len(p.entries), err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done == nil {
		w.done = map[string]placed{}
	}
	for sha, off := range p.at {
		w.done[sha] = placed{key, off}
	}
	for _, v := range p.entries {
		v.Blob = key
	}
	return nil
}

// ReadEach reads back the bytes of every version in vs, decrypted with
// identity, and gives each to fn with a reader of its bytes. Each pack is
// read once, whatever number of versions it holds; a packed version's
// bytes are checked against its sha256 before fn sees them, a blob of its
// own as fn reads it (its reader fails at the end: write nothing final
// before it returned io.EOF). Up to workers run at once; the first error
// stops the rest and is returned.
func ReadEach(ctx context.Context, st objstore.Store, source string, vs []Version, identity age.Identity, workers int, fn func(Version, io.Reader) error) error {
	type job struct {
		blob string
		vs   []Version
	}
	var jobs []job
	packs := map[string]int{}
	for _, v := range vs {
		if v.Deleted {
			return fmt.Errorf("%q is a deletion: it has no bytes", v.Key)
		}
		if !IsPack(v.Blob) {
			jobs = append(jobs, job{v.Blob, []Version{v}})
			continue
		}
		i, ok := packs[v.Blob]
		if !ok {
			i = len(jobs)
			packs[v.Blob] = i
			jobs = append(jobs, job{blob: v.Blob})
		}
		jobs[i].vs = append(jobs[i].vs, v)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(max(1, workers), max(1, len(jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				var err error
				if IsPack(j.blob) {
					err = readPack(ctx, st, source, j.blob, j.vs, identity, fn)
				} else {
					err = readBlob(ctx, st, source, j.vs[0], identity, fn)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func readBlob(ctx context.Context, st objstore.Store, source string, v Version, identity age.Identity, fn func(Version, io.Reader) error) error {
	rc, err := Open(ctx, st, source, v, identity)
	if err != nil {
		return err
	}
	defer rc.Close()
	return fn(v, rc)
}

// readPack streams the pack once, front to back, and hands out the
// versions it holds in the order of their offsets.
func readPack(ctx context.Context, st objstore.Store, source, blob string, vs []Version, identity age.Identity, fn func(Version, io.Reader) error) error {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Offset < vs[j].Offset })
	r, c, err := openStored(ctx, st, source, blob, vs[0].Key, identity)
	if err != nil {
		return err
	}
	defer c.Close()
	var (
		pos  int64
		buf  []byte
		last = int64(-1)
		sum  string
	)
	for _, v := range vs {
		if v.Size > MaxPacked {
			return fmt.Errorf("%w: %q is recorded with %d bytes in pack %s, more than a pack holds", ErrCorrupt, v.Key, v.Size, blob)
		}
		if v.Offset != last {
			if v.Offset < pos {
				return fmt.Errorf("%w: %q at offset %d of pack %s overlaps the object before it", ErrCorrupt, v.Key, v.Offset, blob)
			}
			if _, err := io.CopyN(io.Discard, r, v.Offset-pos); err != nil {
				return fmt.Errorf("%w: pack %s ends before %q at offset %d: %v", ErrCorrupt, blob, v.Key, v.Offset, err)
			}
			buf = buf[:0]
			if int64(cap(buf)) < v.Size {
				buf = make([]byte, 0, v.Size)
			}
			buf = buf[:v.Size]
			if _, err := io.ReadFull(r, buf); err != nil {
				return fmt.Errorf("%w: pack %s ends inside %q (offset %d, %d bytes): %v", ErrCorrupt, blob, v.Key, v.Offset, v.Size, err)
			}
			pos, last = v.Offset+v.Size, v.Offset
			h := sha256.Sum256(buf)
			sum = hex.EncodeToString(h[:])
		}
		if sum != v.SHA256 || int64(len(buf)) != v.Size {
			return fmt.Errorf("%w: %q reads back from pack %s as %d bytes with sha256 %s, recorded as %d bytes with %s", ErrCorrupt, v.Key, blob, len(buf), sum, v.Size, v.SHA256)
		}
		if err := fn(v, bytes.NewReader(buf)); err != nil {
			return err
		}
	}
	return nil
}

// openStored opens blob, decrypting it when it is encrypted; what names
// the object it is read for, in errors.
func openStored(ctx context.Context, st objstore.Store, source, blob, what string, identity age.Identity) (io.Reader, io.Closer, error) {
	rc, err := st.Get(ctx, Dir(source)+blob)
	if err != nil {
		return nil, nil, fmt.Errorf("read the copy of %q: %w", what, err)
	}
	if !strings.HasSuffix(blob, ".age") {
		return rc, rc, nil
	}
	if identity == nil {
		rc.Close()
		return nil, nil, fmt.Errorf("the copy of %q is encrypted: give the snapshot key (--key-file, $DR_SNAPSHOT_KEY, or the install's Secret)", what)
	}
	r, err := age.Decrypt(rc, identity)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("decrypt the copy of %q: %w", what, err)
	}
	return r, rc, nil
}
