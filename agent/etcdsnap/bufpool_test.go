package etcdsnap

import (
	"bytes"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/mem"
)

// Messages parsed through the snapshot connection's codec come out whole,
// and a buffer the pool hands out again (not zeroed) never shows a
// message bytes of the one before it.
func TestStreamCodecReusesBuffersSafely(t *testing.T) {
	c := streamCodec{}
	blobs := [][]byte{bytes.Repeat([]byte{0xaa}, 40<<10), bytes.Repeat([]byte{0x55}, 20<<10), {}, bytes.Repeat([]byte{0x11}, 40<<10)}
	var parsed []*pb.SnapshotResponse
	for i, blob := range blobs {
		data, err := c.Marshal(&pb.SnapshotResponse{RemainingBytes: uint64(i), Blob: blob})
		if err != nil {
			t.Fatal(err)
		}
		// As the transport hands it over: in frames of 16 KiB, in
		// buffers from the pool.
		raw := data.Materialize()
		var frames mem.BufferSlice
		for len(raw) > 0 {
			n := min(len(raw), 16<<10)
			b := streamBuffers.Get(n)
			copy(*b, raw[:n])
			frames = append(frames, mem.NewBuffer(b, streamBuffers))
			raw = raw[n:]
		}
		got := &pb.SnapshotResponse{}
		if err := c.Unmarshal(frames, got); err != nil {
			t.Fatal(err)
		}
		frames.Free()
		parsed = append(parsed, got)
	}
	// Checked once every buffer has been reused: a message must not
	// point into one.
	for i, got := range parsed {
		if !bytes.Equal(got.Blob, blobs[i]) || got.RemainingBytes != uint64(i) {
			t.Errorf("message %d: blob of %d bytes %x... (want %d of %x), remaining %d", i, len(got.Blob), got.Blob[:min(4, len(got.Blob))], len(blobs[i]), blobs[i][:min(4, len(blobs[i]))], got.RemainingBytes)
		}
	}
}
