package snapfile

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
)

// Kinds of snapshot file, as Verify finds them.
const (
	KindEtcdctl = "etcdctl" // bolt database and etcd's sha256 trailer
	KindK3sZip  = "k3s-zip" // k3s's --etcd-snapshot-compress: one deflate entry holding an etcdctl file
	KindBoltDB  = "bolt-db" // a copied member/snap/db: no trailer
	KindSQLite  = "sqlite"  // a copy of k3s's state.db
)

// Errors a caller can tell apart.
var (
	// ErrNoTrailer: a bolt database without etcd's sha256 trailer, refused
	// unless the caller asked for NoHash.
	ErrNoTrailer = errors.New("no sha256 trailer")
	// ErrCorrupt: the file is damaged or is not a snapshot.
	ErrCorrupt = errors.New("not a usable snapshot")
)

// MaxUnzipped bounds what a .zip may unzip to unless Options say otherwise.
const MaxUnzipped = 64 << 30

// Options for Verify.
type Options struct {
	// NoHash accepts a bolt database without a trailer after bbolt's
	// consistency check (etcdutl's --skip-hash-check).
	NoHash bool
	// TempDir is where an unzipped or re-trailed copy is written
	// (default os.TempDir(), $TMPDIR).
	TempDir string
	// MaxUnzipped bounds a .zip's entry (default MaxUnzipped).
	MaxUnzipped int64
}

// File is a verified snapshot in etcdctl's format.
type File struct {
	// Path is the verified etcdctl-format file: the input itself, or a
	// temporary copy (unzipped, or the trailer appended) that Close removes.
	Path string
	// Kind is what the input was.
	Kind string
	// EntryName is a .zip's entry name.
	EntryName string
	// Size and SHA256 are Path's.
	Size   int64
	SHA256 string
	// InputSHA256 is the sha256 of the file as given.
	InputSHA256 string
	Revision    int64
	temp        bool
}

// Close removes a temporary copy.
func (f *File) Close() error {
	if f.temp {
		return os.Remove(f.Path)
	}
	return nil
}

var (
	zipMagic    = []byte("PK\x03\x04")
	sqliteMagic = []byte("SQLite format 3\x00")
)

// Kind names a file's kind from its first bytes and size.
func Kind(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	switch {
	case bytes.HasPrefix(head, zipMagic):
		return KindK3sZip, nil
	case bytes.HasPrefix(head, sqliteMagic):
		return KindSQLite, nil
	case st.Size()%512 == sha256.Size:
		return KindEtcdctl, nil
	}
	return KindBoltDB, nil
}

// Verify checks the snapshot file at path and returns it as a verified
// etcdctl-format file. Nothing it refuses leaves a file behind.
func Verify(path string, o Options) (*File, error) {
	kind, err := Kind(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxUnzipped <= 0 {
		o.MaxUnzipped = MaxUnzipped
	}
	var f *File
	switch kind {
	case KindK3sZip:
		f, err = unzip(path, o)
	case KindSQLite:
		return nil, fmt.Errorf("%s is a SQLite database (a state.db copy): snapshot import takes etcd snapshots only; restore a state.db copy on the server with dr-agent etcd restore --file", path)
	case KindEtcdctl:
		f, err = checkTrailer(path)
	default:
		f, err = checkBolt(path, o)
	}
	if err != nil {
		return nil, err
	}
	if f.Revision, err = revision(f.Path); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	return f, nil
}

// checkTrailer hashes all but the last 32 bytes and compares them with those.
func checkTrailer(path string) (*File, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, err
	}
	whole := sha256.New()
	db := sha256.New()
	if _, err := io.Copy(io.MultiWriter(whole, db), io.LimitReader(in, st.Size()-sha256.Size)); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	trailer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(in, trailer); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	whole.Write(trailer)
	if sum := db.Sum(nil); !bytes.Equal(sum, trailer) {
		return nil, fmt.Errorf("%s: %w: its sha256 trailer is %x, the database hashes to %x: the file is truncated or damaged (copy it again)", path, ErrCorrupt, trailer, sum)
	}
	sum := hex.EncodeToString(whole.Sum(nil))
	return &File{Path: path, Kind: KindEtcdctl, Size: st.Size(), SHA256: sum, InputSHA256: sum}, nil
}

// checkBolt runs bbolt's consistency check on a database without a
// trailer, then writes a copy with the trailer etcdctl would have added,
// so every restore path takes it like any other snapshot.
func checkBolt(path string, o Options) (*File, error) {
	if !o.NoHash {
		return nil, fmt.Errorf("%s: %w (its size is not 32 bytes past a 512-byte multiple): a copy of member/snap/db, or a truncated etcdctl snapshot; if it is a member's db, give --no-hash to check its bbolt consistency instead", path, ErrNoTrailer)
	}
	if err := boltCheck(path); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	in, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer in.Close()
	input := sha256.New()
	out, err := newTemp(o.TempDir, filepath.Base(path))
	if err != nil {
		return nil, err
	}
	db := sha256.New()
	n, err := io.Copy(io.MultiWriter(out.w, db, input), in)
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("copy %s: %w", path, err)
	}
	trailer := db.Sum(nil)
	if _, err := out.w.Write(trailer); err != nil {
		out.abort()
		return nil, err
	}
	f, err := out.done(n + sha256.Size)
	if err != nil {
		return nil, err
	}
	f.Kind, f.InputSHA256 = KindBoltDB, hex.EncodeToString(input.Sum(nil))
	return f, nil
}

// unzip takes k3s's .zip: exactly one entry, unzipped streaming into a
// temporary file, no further than the size the entry declares (and at most
// o.MaxUnzipped), checked by zip's CRC-32 and then as an etcdctl file.
func unzip(path string, o Options) (*File, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v (a truncated .zip?)", path, ErrCorrupt, err)
	}
	defer zr.Close()
	if len(zr.File) != 1 {
		return nil, fmt.Errorf("%s: %w: a k3s snapshot .zip holds one file, this one holds %d", path, ErrCorrupt, len(zr.File))
	}
	e := zr.File[0]
	if e.Method != zip.Deflate && e.Method != zip.Store {
		return nil, fmt.Errorf("%s: %w: entry %s uses compression method %d (k3s writes deflate)", path, ErrCorrupt, e.Name, e.Method)
	}
	if e.UncompressedSize64 > uint64(o.MaxUnzipped) {
		return nil, fmt.Errorf("%s: %w: entry %s would unzip to %d bytes, over the limit of %d", path, ErrCorrupt, e.Name, e.UncompressedSize64, o.MaxUnzipped)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	defer rc.Close()
	out, err := newTemp(o.TempDir, filepath.Base(e.Name))
	if err != nil {
		return nil, err
	}
	// zip's reader checks the CRC-32 and the declared size at the end; the
	// limit stops an entry that lies about its size from filling the disk.
	n, err := io.Copy(out.w, io.LimitReader(rc, int64(e.UncompressedSize64)+1))
	if err == nil && n != int64(e.UncompressedSize64) {
		err = fmt.Errorf("entry %s unzips to more than the %d bytes it declares", e.Name, e.UncompressedSize64)
	}
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("unzip %s: %w: %v", path, ErrCorrupt, err)
	}
	f, err := out.done(n)
	if err != nil {
		return nil, err
	}
	input, err := fileSHA256(path)
	if err != nil {
		f.Close()
		return nil, err
	}
	if k, _ := Kind(f.Path); k != KindEtcdctl {
		f.Close()
		return nil, fmt.Errorf("%s: %w: entry %s has no sha256 trailer (%d bytes)", path, ErrCorrupt, e.Name, n)
	}
	if _, err := checkTrailer(f.Path); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: entry %s: %w", path, e.Name, err)
	}
	f.Kind, f.EntryName, f.InputSHA256 = KindK3sZip, e.Name, input
	return f, nil
}

// boltCheck opens the database read-only and walks every bucket and key,
// checking that each bucket's keys are in order; a damaged file that makes
// bbolt fault or panic is an error, not a crash. (bbolt's own tx.Check
// first rebuilds a freelist etcd never writes, in a goroutine that panics
// on a damaged page: the walk runs where a panic can be recovered.)
func boltCheck(path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open bbolt database: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("key")) == nil {
			return errors.New("no \"key\" bucket: not an etcd database")
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walkBucket(string(name), b)
		})
	})
}

func walkBucket(name string, b *bolt.Bucket) error {
	var prev []byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("bucket %q: key %x is not after %x", name, k, prev)
		}
		prev = append(prev[:0], k...)
		if v == nil {
			sub := b.Bucket(k)
			if sub == nil {
				return fmt.Errorf("bucket %q: key %x has no value and is no bucket", name, k)
			}
			if err := walkBucket(name+"/"+string(k), sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func revision(path string) (int64, error) {
	s, err := kvsnap.Open(path)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.Each("\x00\x00nothing", func(kvsnap.KeyValue) error { return nil })
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// temp is a temporary file hashed while written.
type temp struct {
	f *os.File
	h hash.Hash
	w io.Writer
}

func newTemp(dir, base string) (*temp, error) {
	f, err := os.CreateTemp(dir, base+".*.part")
	if err != nil {
		return nil, fmt.Errorf("create a temporary copy: %w", err)
	}
	h := sha256.New()
	return &temp{f: f, h: h, w: io.MultiWriter(f, h)}, nil
}

func (t *temp) abort() {
	t.f.Close()
	os.Remove(t.f.Name())
}

func (t *temp) done(size int64) (*File, error) {
	if err := t.f.Close(); err != nil {
		os.Remove(t.f.Name())
		return nil, fmt.Errorf("write %s: %w", t.f.Name(), err)
	}
	return &File{Path: t.f.Name(), Size: size, SHA256: hex.EncodeToString(t.h.Sum(nil)), temp: true}, nil
}
