package walobj

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// segment is a 16 MiB WAL segment: a real one when DR_WAL_SEGMENT names
// one, else half random, half zero (a segment switched half-full).
func segment(tb testing.TB) []byte {
	if p := os.Getenv("DR_WAL_SEGMENT"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		return data
	}
	data := make([]byte, 16<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(data)/2; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	return data
}

func BenchmarkEncode(b *testing.B) {
	enc := newEncoder(b)
	data := segment(b)
	var out bytes.Buffer
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out.Reset()
		if err := enc.Encode(&out, data); err != nil {
			b.Fatal(err)
		}
	}
}

// The checksum of a segment: xxh64 since drwal2, sha256 before.
func BenchmarkSHA256(b *testing.B) {
	data := segment(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sha256.Sum256(data)
	}
}

func BenchmarkZstdOnly(b *testing.B) {
	data := segment(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		zw, _ := zstd.NewWriter(io.Discard, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		zw.Write(data)
		zw.Close()
	}
}

func BenchmarkXXH64(b *testing.B) {
	data := segment(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		xxhash.Sum64(data)
	}
}
