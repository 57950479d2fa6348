package durable

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempSuffix ends every temporary name: listings skip it (IsTemp).
const tempSuffix = ".part"

// ErrMismatch means a file's size or checksum is not what was recorded.
var ErrMismatch = errors.New("checksum mismatch")

// IsTemp reports whether name is a temporary file of this package (or an
// interrupted write's leftover): never a finished file.
func IsTemp(name string) bool { return strings.HasSuffix(name, tempSuffix) }

// file is what a write needs of an *os.File; tests hand in failing ones.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

// ops are the file-system calls a write makes, so tests can fail each.
type ops struct {
	create  func(name string, perm fs.FileMode) (file, error)
	rename  func(oldpath, newpath string) error
	link    func(oldpath, newpath string) error
	remove  func(name string) error
	mkdir   func(name string, perm fs.FileMode) error
	syncDir func(dir string) error
}

func osOps() ops {
	return ops{
		create: func(name string, perm fs.FileMode) (file, error) {
			return os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
		},
		rename:  os.Rename,
		link:    os.Link,
		remove:  os.Remove,
		mkdir:   os.Mkdir,
		syncDir: SyncDir,
	}
}

// Option changes how Create writes.
type Option func(*File)

// WithHash hashes the content with h instead of sha256; nil hashes nothing
// (for callers that already checksum the same bytes).
func WithHash(h hash.Hash) Option { return func(f *File) { f.hash = h } }

// NoSync skips both fsyncs: the file still appears whole or not at all,
// but may be lost in a crash. Only for caches that are checked again
// before use and removed after.
func NoSync() Option { return func(f *File) { f.nosync = true } }

// NoReplace makes Commit refuse to replace a file already under the final
// name: it links the temporary to the final name (which fails when one is
// there) instead of renaming over it, and the error wraps fs.ErrExist. For
// files whose first writer wins.
func NoReplace() Option { return func(f *File) { f.noReplace = true } }

// File is a file being written under a temporary name; Commit makes it
// appear under its final name, Abort removes it.
type File struct {
	ops    ops
	f      file
	final  string
	temp   string
	hash   hash.Hash
	size   int64
	nosync bool
	// noReplace: Commit links instead of renaming (NoReplace).
	noReplace bool
	done      bool
	err       error
}

// Create starts writing path. The temporary file sits in path's directory
// (which must exist), so the rename is atomic. Call Commit or Abort.
func Create(path string, perm fs.FileMode, opts ...Option) (*File, error) {
	return create(osOps(), path, perm, opts...)
}

func create(o ops, path string, perm fs.FileMode, opts ...Option) (*File, error) {
	w := &File{ops: o, final: filepath.Clean(path), hash: sha256.New()}
	for _, opt := range opts {
		opt(w)
	}
	for range 10 {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		w.temp = w.final + "." + hex.EncodeToString(rnd[:]) + tempSuffix
		f, err := o.create(w.temp, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", w.final, err)
		}
		w.f = f
		return w, nil
	}
	return nil, fmt.Errorf("create %s: no free temporary name", w.final)
}

// Write writes to the temporary file. A short write is an error; after
// any error the file can only be aborted.
func (w *File) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, fmt.Errorf("write %s: already committed or aborted", w.final)
	}
	n, err := w.f.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if w.hash != nil {
		w.hash.Write(p[:n])
	}
	w.size += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write %s: %w", w.final, err)
		return n, w.err
	}
	return n, nil
}

// Size is how many bytes were written.
func (w *File) Size() int64 { return w.size }

// Sum is the hash of what was written (sha256 unless WithHash said
// otherwise; nil with WithHash(nil)).
func (w *File) Sum() []byte {
	if w.hash == nil {
		return nil
	}
	return w.hash.Sum(nil)
}

// Commit fsyncs the file, renames it over the final name and fsyncs the
// directory. On any error the temporary is removed and the final name is
// left as it was.
func (w *File) Commit() error {
	if w.done {
		return fmt.Errorf("commit %s: already committed or aborted", w.final)
	}
	if w.err != nil {
		w.Abort()
		return w.err
	}
	w.done = true
	var err error
	if !w.nosync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
	case w.noReplace:
		if err = w.ops.link(w.temp, w.final); err == nil {
			w.ops.remove(w.temp)
		}
	default:
		err = w.ops.rename(w.temp, w.final)
	}
	if err != nil {
		w.ops.remove(w.temp)
		return fmt.Errorf("write %s: %w", w.final, err)
	}
	if w.nosync {
		return nil
	}
	if err := w.ops.syncDir(filepath.Dir(w.final)); err != nil {
		// The file is in place; only its name may not survive a crash.
		return fmt.Errorf("write %s: sync directory: %w", w.final, err)
	}
	return nil
}

// Abort removes the temporary file. It is safe to call after Commit (it
// does nothing then), so `defer f.Abort()` covers every error path.
func (w *File) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	w.ops.remove(w.temp)
}

// WriteFile writes data to path durably: whole or not at all, and on disk
// when it returns nil.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return writeFile(osOps(), path, data, perm)
}

func writeFile(o ops, path string, data []byte, perm fs.FileMode) error {
	f, err := create(o, path, perm, WithHash(nil))
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// Copy writes what r yields to path durably and returns its size and
// sha256.
func Copy(path string, r io.Reader, perm fs.FileMode) (int64, []byte, error) {
	f, err := Create(path, perm)
	if err != nil {
		return 0, nil, err
	}
	defer f.Abort()
	if _, err := io.Copy(f, r); err != nil {
		return 0, nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return 0, nil, err
	}
	return f.Size(), f.Sum(), nil
}

// SyncDir fsyncs a directory, making the names in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// MkdirAll creates path and any missing parents, like os.MkdirAll, and
// fsyncs the parent of each directory it creates, so that a new directory
// (and what is written durably into it) survives a crash. Directories that
// already exist are left as they are.
func MkdirAll(path string, perm fs.FileMode) error {
	return mkdirAll(osOps(), path, perm)
}

func mkdirAll(o ops, path string, perm fs.FileMode) error {
	path = filepath.Clean(path)
	// The missing directories, deepest first.
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("create directory %s: %s is not a directory", path, p)
			}
			break
		}
		// ENOTDIR: a parent is a file; the walk up names it.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("create directory %s: %w", path, err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		dir := missing[i]
		if err := o.mkdir(dir, perm); err != nil {
			// Another creator got there first: theirs to sync, ours to use.
			if st, serr := os.Stat(dir); errors.Is(err, fs.ErrExist) && serr == nil && st.IsDir() {
				continue
			}
			return fmt.Errorf("create directory %s: %w", path, err)
		}
		if err := o.syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("create directory %s: %w", path, err)
		}
	}
	return nil
}

// Verify checks that path holds size bytes whose sha256 is sumHex. A
// mismatch wraps ErrMismatch.
func Verify(path string, size int64, sumHex string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sumHex {
		return fmt.Errorf("%w: %s is %d bytes with sha256 %s, expected %d bytes with sha256 %s", ErrMismatch, path, n, got, size, sumHex)
	}
	return nil
}

// Rename renames oldpath to newpath and fsyncs the directories involved,
// so the move survives a crash.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(newpath)); err != nil {
		return err
	}
	if od, nd := filepath.Dir(oldpath), filepath.Dir(newpath); od != nd {
		return SyncDir(od)
	}
	return nil
}

// MoveAside moves src to dst instead of deleting it (dst's directory is
// created durably; an existing dst is an error, never overwritten). Across
// file systems a regular file is copied durably first and src removed only
// once the copy is on disk.
func MoveAside(src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("move %s aside: %s already exists", src, dst)
	}
	if err := MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	err := Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("move %s aside to %s: another file system, and not a regular file", src, dst)
	}
	if _, _, err := Copy(dst, in, st.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Remove(src); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(src))
}
