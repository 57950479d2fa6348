package snapfile

import (
	"os"
	"path/filepath"
	"testing"
)

// A file given to import is anyone's bytes: Verify never panics, and what
// it refuses leaves nothing in its temporary directory.
func FuzzVerify(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("PK\x03\x04"),
		[]byte("SQLite format 3\x00"),
		make([]byte, 512+32),
		make([]byte, 4096),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "tmp")
		if err := os.Mkdir(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		file, err := Verify(path, Options{NoHash: true, TempDir: tmp, MaxUnzipped: 1 << 20})
		if err == nil {
			file.Close()
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
			t.Fatalf("left behind: %v (err %v)", left, err)
		}
	})
}
