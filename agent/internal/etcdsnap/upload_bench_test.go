package etcdsnap

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand"
	"testing"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// discardStore swallows uploads: the benchmark measures our side only.
type discardStore struct{ objstore.Store }

func (discardStore) Put(_ context.Context, _ string, r io.Reader, _ int64) (int64, error) {
	return io.Copy(io.Discard, r)
}

// benchData is shaped like bench fill's values: a third random, the rest
// repeated text.
func benchData(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewSource(1))
	text := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench","namespace":"default"}}`)
	for off := 0; off < n; off += 128 << 10 {
		end := min(off+128<<10, n)
		third := off + (end-off)/3
		rng.Read(b[off:third])
		for i := third; i < end; i += copy(b[i:end], text) {
		}
	}
	return b
}

func BenchmarkSnapshotStages(b *testing.B) {
	data := benchData(64 << 20)
	id, _ := age.GenerateX25519Identity()
	// In the snapshot stream's chunks (etcd sends 32 KiB per message).
	chunks := func(write func([]byte)) {
		for off := 0; off < len(data); off += 32 << 10 {
			write(data[off:min(off+32<<10, len(data))])
		}
	}
	writer := func(w io.Writer) func([]byte) { return func(p []byte) { w.Write(p) } }
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			chunks(writer(sha256.New()))
		}
	})
	b.Run("trailer-check", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			chunks(writer(newTrailerCheck()))
		}
	})
	for _, enc := range []struct {
		name string
		r    age.Recipient
	}{{"zstd", nil}, {"zstd+age", id.Recipient()}} {
		b.Run("upload-"+enc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				u, err := startUpload(context.Background(), discardStore{}, "k", enc.r)
				if err != nil {
					b.Fatal(err)
				}
				chunks(func(p []byte) { u.send(p, nil) })
				if _, _, err := u.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
