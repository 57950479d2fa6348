package signature_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// What a signature adds to a record's write and read, against the plain
// Put and Get every record had before (a 2 KiB record, as a snapshot's
// is, on a file:// store: its fsyncs are the floor): one ECDSA P-256
// signature and one more object on write; on read, one more object, a
// chain check and a verification.
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	w := newWorld(b)
	data := bytes.Repeat([]byte(`{"k":"v"},`), 200)
	const key = "etcd/server-1/snap-1.json"
	open := func(b *testing.B) objstore.Store {
		s, err := objstore.Open(objstore.Config{URL: "file://" + b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		return s.Sub("cluster-1")
	}
	b.Run("write/plain", func(b *testing.B) {
		s := open(b)
		for b.Loop() {
			if _, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write/signed", func(b *testing.B) {
		s := open(b)
		node1 := w.node1
		for b.Loop() {
			if err := signature.Put(ctx, s, &node1, key, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read/plain", func(b *testing.B) {
		s := open(b)
		if _, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			rc, err := s.Get(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			io.ReadAll(rc)
			rc.Close()
		}
	})
	b.Run("read/verified", func(b *testing.B) {
		s := open(b)
		node1 := w.node1
		if err := signature.Put(ctx, s, &node1, key, data); err != nil {
			b.Fatal(err)
		}
		trust := w.trust
		p := signature.Policy{Trust: &trust}
		for b.Loop() {
			if _, _, err := p.Read(ctx, s, "snapshot record", key, 1<<20, signature.Owner{Node: "server-1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
