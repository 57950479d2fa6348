package dbsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// countingWriter counts what it is given and keeps none of it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// A damaged data object that decodes to far more than the snapshot (16 KiB
// of zstd RLE blocks, 128 KiB each decoded: 500 MiB) is refused once it
// passes the recorded size, not after writing all of it where a restore
// or fetch puts the snapshot.
func TestStreamStopsAtTheRecordedSize(t *testing.T) {
	obj := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38} // frame, no content size, 128 KiB window
	for range 4000 {
		obj = append(obj, 0x02, 0x00, 0x10, 'x') // RLE block of 128 KiB
	}
	obj = append(obj, 0x03, 0x00, 0x10, 'x')
	ctx := context.Background()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "etcd/n1/s.db.zst", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(obj)
	for _, stored := range []string{hex.EncodeToString(sum[:]), strings.Repeat("0", 64)} {
		snap := &Snapshot{Name: "s", Node: "n1", StoreKey: "etcd/n1/s.db.zst", Compression: "zstd",
			Size: 1 << 20, SHA256: strings.Repeat("0", 64), StoredSize: int64(len(obj)), StoredSHA256: stored}
		var w countingWriter
		err := Stream(ctx, store, snap, nil, &w)
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("stored sha256 %.8s: err = %v, want ErrChecksum", stored, err)
		}
		if w.n > snap.Size+1 {
			t.Errorf("stored sha256 %.8s: Stream wrote %d bytes of a snapshot recorded as %d", stored, w.n, snap.Size)
		}
	}
}

// Fetch reports the raw bytes written as it goes, ending at the
// snapshot's size, and the file holds exactly them.
func TestFetchReportsProgress(t *testing.T) {
	ctx := context.Background()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Repeat([]byte("etcd snapshot bytes "), 100000)
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	obj := zbuf.Bytes()
	if _, err := store.Put(ctx, "etcd/n1/s.db.zst", bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	rawSum, objSum := sha256.Sum256(raw), sha256.Sum256(obj)
	snap := &Snapshot{Name: "s", Node: "n1", StoreKey: "etcd/n1/s.db.zst", Compression: "zstd",
		Size: int64(len(raw)), SHA256: hex.EncodeToString(rawSum[:]), StoredSize: int64(len(obj)), StoredSHA256: hex.EncodeToString(objSum[:])}
	var reports []int64
	path := filepath.Join(t.TempDir(), "s.db")
	if err := Fetch(ctx, store, snap, nil, path, WithProgress(func(done int64) { reports = append(reports, done) })); err != nil {
		t.Fatal(err)
	}
	if len(reports) < 2 || reports[len(reports)-1] != snap.Size {
		t.Errorf("progress reports %v, want several ending at %d", reports, snap.Size)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i] < reports[i-1] {
			t.Errorf("progress went back: %v", reports)
		}
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("fetched file differs from the snapshot: %v", err)
	}
}
