package dbsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

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
