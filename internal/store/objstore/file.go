package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
)

type fileStore struct {
	root   string
	prefix string
}

func newFileStore(root string) (*fileStore, error) {
	return &fileStore{root: filepath.Clean(root)}, nil
}

func (s *fileStore) String() string { return "file://" + filepath.Join(s.root, s.prefix) }

func (s *fileStore) Sub(prefix string) Store {
	return &fileStore{root: s.root, prefix: strings.Trim(joinKey(s.prefix, prefix), "/")}
}

func (s *fileStore) path(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(joinKey(s.prefix, key))), nil
}

func (s *fileStore) Put(ctx context.Context, key string, r io.Reader, _ int64) (int64, error) {
	return s.put(ctx, key, r, false)
}

// Create implements Creator: the object's file is linked into place, which
// fails when one is there.
func (s *fileStore) Create(ctx context.Context, key string, r io.Reader, _ int64) (int64, error) {
	return s.put(ctx, key, r, true)
}

func (s *fileStore) put(ctx context.Context, key string, r io.Reader, ifAbsent bool) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	if err := durable.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return 0, fmt.Errorf("store %s: %w", s, err)
	}
	ours := newChecksum()
	opts := []durable.Option{durable.WithHash(ours)}
	if ifAbsent {
		opts = append(opts, durable.NoReplace())
	}
	f, err := durable.Create(p, 0o600, opts...)
	if err != nil {
		return 0, fmt.Errorf("store %s: %w", s, err)
	}
	defer f.Abort()
	n, err := io.Copy(f, readerWithContext(ctx, r))
	if err == nil {
		err = f.Commit()
	}
	if ifAbsent && errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("%s: %w", key, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("store %s: write %s: %w", s, key, err)
	}
	if afterCommit != nil {
		afterCommit(p)
	}
	// A directory has no checksum of its own to answer with: read the file
	// back (from the page cache, mostly) and compare.
	want := encodeChecksum(ours)
	got, err := readBack(ctx, s, key)
	if err != nil {
		return 0, fmt.Errorf("store %s: verify %s: %w", s, key, err)
	}
	if got != want {
		return 0, mismatch(ctx, s, key, want, got, "returned bytes with")
	}
	return n, nil
}

// afterCommit, set by tests, runs between writing an object and reading
// it back.
var afterCommit func(path string)

func (s *fileStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return f, err
}

func (s *fileStore) Stat(_ context.Context, key string) (ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: st.Size(), Modified: st.ModTime()}, nil
}

func (s *fileStore) List(_ context.Context, prefix string) ([]ObjectInfo, error) {
	base := filepath.Join(s.root, filepath.FromSlash(s.prefix))
	var out []ObjectInfo
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() || durable.IsTemp(p) {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: list %s: %w", s, prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *fileStore) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store %s: delete %s: %w", s, key, err)
	}
	return nil
}

func (s *fileStore) Check(ctx context.Context) error { return check(ctx, s, "") }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func readerWithContext(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
