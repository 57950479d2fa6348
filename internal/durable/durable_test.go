package durable

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var errInjected = errors.New("injected")

// faultyFile fails one of its calls; a short write writes half and says so
// only through n.
type faultyFile struct {
	f                    *os.File
	shortWrite, writeErr bool
	syncErr, closeErr    bool
}

func (f *faultyFile) Write(p []byte) (int, error) {
	switch {
	case f.writeErr:
		n, _ := f.f.Write(p[:len(p)/2])
		return n, errInjected
	case f.shortWrite:
		return f.f.Write(p[:len(p)/2])
	}
	return f.f.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.syncErr {
		return errInjected
	}
	return f.f.Sync()
}

func (f *faultyFile) Close() error {
	err := f.f.Close()
	if f.closeErr {
		return errInjected
	}
	return err
}

type fault struct {
	create, rename, syncDir bool
	file                    faultyFile
}

func (fl *fault) ops() ops {
	o := osOps()
	create := o.create
	o.create = func(name string, perm fs.FileMode) (file, error) {
		if fl.create {
			return nil, errInjected
		}
		f, err := create(name, perm)
		if err != nil {
			return nil, err
		}
		ff := fl.file
		ff.f = f.(*os.File)
		return &ff, nil
	}
	rename := o.rename
	o.rename = func(a, b string) error {
		if fl.rename {
			return errInjected
		}
		return rename(a, b)
	}
	syncDir := o.syncDir
	o.syncDir = func(d string) error {
		if fl.syncDir {
			return errInjected
		}
		return syncDir(d)
	}
	return o
}

// names lists what is in dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileFaults(t *testing.T) {
	old := []byte("the previous, good content\n")
	data := bytes.Repeat([]byte("new content "), 1000)
	tests := []struct {
		name  string
		fault fault
		// placed: the new content is under the final name despite the
		// error (only a failed directory sync leaves it so).
		placed bool
	}{
		{name: "create fails", fault: fault{create: true}},
		{name: "short write", fault: fault{file: faultyFile{shortWrite: true}}},
		{name: "write error", fault: fault{file: faultyFile{writeErr: true}}},
		{name: "fsync error", fault: fault{file: faultyFile{syncErr: true}}},
		{name: "close error", fault: fault{file: faultyFile{closeErr: true}}},
		{name: "rename error", fault: fault{rename: true}},
		{name: "directory fsync error", fault: fault{syncDir: true}, placed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "record.json")
			if err := os.WriteFile(path, old, 0o600); err != nil {
				t.Fatal(err)
			}
			err := writeFile(tc.fault.ops(), path, data, 0o600)
			if !errors.Is(err, errInjected) && !errors.Is(err, io.ErrShortWrite) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if !strings.Contains(err.Error(), "record.json") {
				t.Errorf("error %q does not name the file", err)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			want := old
			if tc.placed {
				want = data
			}
			if !bytes.Equal(got, want) {
				t.Errorf("final name holds %d bytes (%.20q...), want %d bytes", len(got), got, len(want))
			}
			if n := names(t, dir); len(n) != 1 || n[0] != "record.json" {
				t.Errorf("directory holds %v, want only record.json (no temporary left)", n)
			}
		})
	}
}

func TestCreateCommitHashesAndPlaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap")
	f, err := Create(path, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	for _, part := range []string{"hello ", "world"} {
		if _, err := f.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final name visible before Commit: %v", err)
	}
	if n := names(t, dir); len(n) != 1 || !IsTemp(n[0]) {
		t.Fatalf("while writing the directory holds %v, want one temporary", n)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("hello world"))
	if got := hex.EncodeToString(f.Sum()); got != hex.EncodeToString(sum[:]) || f.Size() != 11 {
		t.Errorf("Sum %s Size %d, want %x 11", got, f.Size(), sum)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if err := Verify(path, 11, hex.EncodeToString(sum[:])); err != nil {
		t.Errorf("Verify of what was written: %v", err)
	}
	if err := Verify(path, 11, strings.Repeat("0", 64)); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify with a wrong sum: %v, want ErrMismatch", err)
	}
	if err := Verify(path, 12, hex.EncodeToString(sum[:])); !errors.Is(err, ErrMismatch) {
		t.Errorf("Verify with a wrong size: %v, want ErrMismatch", err)
	}
	if _, err := f.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if n := names(t, dir); len(n) != 1 || n[0] != "snap" {
		t.Errorf("after Commit the directory holds %v", n)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "x"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	f.Abort()
	f.Abort()
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("after Abort the directory holds %v", n)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

func TestTemporaryNamesAreUnique(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x")
	a, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abort()
	b, err := Create(path, 0o600)
	if err != nil {
		t.Fatalf("a second writer of the same file: %v", err)
	}
	defer b.Abort()
	if a.temp == b.temp {
		t.Fatalf("both writers use %s", a.temp)
	}
	a.Write([]byte("a"))
	b.Write([]byte("b"))
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "b" {
		t.Errorf("final content %q, want the last committed", got)
	}
}

func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "token"), filepath.Join(dir, "aside", "token.aside-1")
	if err := os.WriteFile(src, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MoveAside(src, dst); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(dst); err != nil || string(got) != "secret" {
		t.Errorf("aside holds %q, %v", got, err)
	}
	if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source still there: %v", err)
	}
	if err := os.WriteFile(src, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MoveAside(src, dst); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("moving onto an existing aside: %v, want a refusal", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "secret" {
		t.Errorf("the earlier aside was overwritten: %q", got)
	}
	if got, _ := os.ReadFile(src); string(got) != "second" {
		t.Errorf("the refused move lost its source: %q", got)
	}
}

// recordingOps is the real file system, noting each directory fsynced and
// failing mkdir or the directory fsync when told to.
type recordingOps struct {
	synced            []string
	mkdirErr, syncErr bool
}

func (r *recordingOps) ops() ops {
	o := osOps()
	mkdir := o.mkdir
	o.mkdir = func(name string, perm fs.FileMode) error {
		if r.mkdirErr {
			return errInjected
		}
		return mkdir(name, perm)
	}
	syncDir := o.syncDir
	o.syncDir = func(d string) error {
		if r.syncErr {
			return errInjected
		}
		r.synced = append(r.synced, d)
		return syncDir(d)
	}
	return o
}

func TestMkdirAllSyncsTheParentOfEachNewDirectory(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "c")
	var rec recordingOps
	if err := mkdirAll(rec.ops(), path, 0o750); err != nil {
		t.Fatal(err)
	}
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if strings.Join(rec.synced, ",") != strings.Join(want, ",") {
		t.Errorf("directories fsynced %v, want each new directory's parent %v", rec.synced, want)
	}
	for _, d := range append(want[1:], path) {
		if st, err := os.Stat(d); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: %v, %v; want a directory with mode 0750", d, st, err)
		}
	}

	// What exists is left as it is: nothing new, nothing to sync.
	rec.synced = nil
	if err := mkdirAll(rec.ops(), path, 0o700); err != nil || len(rec.synced) != 0 {
		t.Errorf("again: %v, fsynced %v; want nil and none", err, rec.synced)
	}
	if err := MkdirAll(path, 0o700); err != nil {
		t.Errorf("MkdirAll of an existing directory: %v", err)
	}
}

func TestMkdirAllFaults(t *testing.T) {
	t.Run("a file in the way", func(t *testing.T) {
		root := t.TempDir()
		file := filepath.Join(root, "f")
		if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := MkdirAll(filepath.Join(file, "sub"), 0o700)
		if err == nil || !strings.Contains(err.Error(), file+" is not a directory") {
			t.Errorf("err = %v, want one naming %s as not a directory", err, file)
		}
		if got, _ := os.ReadFile(file); string(got) != "keep" {
			t.Errorf("the file in the way holds %q after the refusal", got)
		}
	})
	for _, tc := range []struct {
		name string
		rec  recordingOps
	}{
		{name: "mkdir fails", rec: recordingOps{mkdirErr: true}},
		{name: "directory fsync fails", rec: recordingOps{syncErr: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a", "b")
			err := mkdirAll(tc.rec.ops(), path, 0o700)
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "create directory "+path) {
				t.Errorf("err = %v, want the injected error wrapped with the directory's name", err)
			}
		})
	}
}

// With NoReplace the first writer wins: a second Commit under the same
// name fails with fs.ErrExist, leaves the first file's bytes and no
// temporary behind.
func TestNoReplaceKeepsTheFirstFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "claim")
	for i, body := range []string{"first", "second"} {
		f, err := Create(p, 0o600, NoReplace())
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(body))
		err = f.Commit()
		if i == 0 && err != nil {
			t.Fatalf("first commit: %v", err)
		}
		if i == 1 && !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second commit: %v, want fs.ErrExist", err)
		}
	}
	if got, _ := os.ReadFile(p); string(got) != "first" {
		t.Errorf("the file holds %q, want the first writer's", got)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("the directory holds %v, want the one file", n)
	}
}
