package dbsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// A snapshot's data object comes from the store: Stream must pass nothing
// off as the snapshot unless both checksums match, and never panic on
// whatever the object holds.
func FuzzStream(f *testing.F) {
	raw := bytes.Repeat([]byte("bolt page "), 2000)
	var obj bytes.Buffer
	zw, err := zstd.NewWriter(&obj)
	if err != nil {
		f.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	f.Add(obj.Bytes())
	f.Add([]byte{})
	f.Add([]byte("\x28\xb5\x2f\xfd garbage"))
	rawSum := sha256.Sum256(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, "etcd/n1/s.db.zst", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		storedSum := sha256.Sum256(data)
		snap := &Snapshot{Name: "s", Node: "n1", StoreKey: "etcd/n1/s.db.zst", Compression: "zstd",
			Size: int64(len(raw)), SHA256: hex.EncodeToString(rawSum[:]),
			StoredSize: int64(len(data)), StoredSHA256: hex.EncodeToString(storedSum[:])}
		err = Stream(ctx, store, snap, nil, io.Discard)
		if err == nil && !bytes.Equal(data, obj.Bytes()) {
			// Another object that decompresses to the same bytes is fine;
			// anything else passing is not.
			var out bytes.Buffer
			zr, _ := zstd.NewReader(bytes.NewReader(data))
			io.Copy(&out, zr)
			if !bytes.Equal(out.Bytes(), raw) {
				t.Fatalf("Stream accepted an object that is not the snapshot")
			}
		}
	})
}

// Metadata records come from the store: reading them must not panic, and
// a record of a newer format version is refused.
func FuzzReadMeta(f *testing.F) {
	f.Add([]byte(`{"version":1,"name":"s","node":"n1","created":"2026-01-01T00:00:00Z","revision":5,"size":10,"sha256":"00","compression":"zstd"}`))
	f.Add([]byte(`{"version":9}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, "etcd/n1/s.json", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		list, _, err := ListStore(ctx, store)
		if err == nil {
			for _, s := range list {
				if s.Version > 1 {
					t.Fatalf("record of version %d accepted", s.Version)
				}
			}
		}
	})
}

// The bootstrap bundle comes from the store too: whatever it holds (its
// recorded checksum made to match, so the age and JSON layers are reached),
// FetchBootstrap returns files only for a bundle that decrypts, never panics.
func FuzzFetchBootstrap(f *testing.F) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	var bundle bytes.Buffer
	w, _ := age.Encrypt(&bundle, id.Recipient())
	w.Write([]byte(`{"server/token":"c2VjcmV0"}`))
	w.Close()
	f.Add(bundle.Bytes())
	f.Add([]byte("age-encryption.org/v1\n-> X25519 garbage\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		key := BootstrapKey("n1", "s")
		if _, err := store.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		snap := &Snapshot{Name: "s", Node: "n1", Bootstrap: &Bootstrap{StoreKey: key, StoredSHA: hex.EncodeToString(sum[:])}}
		files, err := FetchBootstrap(ctx, store, snap, id)
		if err == nil && files == nil {
			t.Fatal("FetchBootstrap returned neither files nor an error")
		}
	})
}
