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
		in := frames(data.Materialize())
		got := &pb.SnapshotResponse{}
		if err := c.Unmarshal(in, got); err != nil {
			t.Fatal(err)
		}
		in.Free()
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

// frames splits raw as the transport hands a message over: in frames of
// 16 KiB, in buffers from the pool.
func frames(raw []byte) mem.BufferSlice {
	var s mem.BufferSlice
	for len(raw) > 0 {
		n := min(len(raw), 16<<10)
		b := streamBuffers.Get(n)
		copy(*b, raw[:n])
		s = append(s, mem.NewBuffer(b, streamBuffers))
		raw = raw[n:]
	}
	return s
}

// The snapshot stream's parser reads every field etcd's does, skips
// fields it does not know, and a blob stays whole for as long as its
// buffer is held, however many messages are parsed meanwhile.
func TestBlobCodecHoldsBuffersUntilFreed(t *testing.T) {
	c := &blobCodec{}
	var want []*pb.SnapshotResponse
	var got []*pb.SnapshotResponse
	var held []mem.Buffer
	for i := range 6 {
		m := &pb.SnapshotResponse{
			Header:         &pb.ResponseHeader{ClusterId: 7, MemberId: uint64(i), Revision: 42, RaftTerm: 3},
			RemainingBytes: uint64(1000 - i),
			Blob:           bytes.Repeat([]byte{byte(i + 1)}, 20<<10+i*5000),
			Version:        "3.6.0",
		}
		raw, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		// A field a newer etcd might add is skipped.
		raw = append(raw, 0x78, 0x01) // field 15, varint 1
		g := &pb.SnapshotResponse{}
		data := frames(raw)
		if err := c.Unmarshal(data, g); err != nil {
			t.Fatal(err)
		}
		data.Free()
		want, got = append(want, m), append(got, g)
		held = append(held, c.take())
		if held[i] == nil {
			t.Fatalf("message %d: no buffer held for its blob", i)
		}
		if i%2 == 1 { // half are freed at once, and their buffers reused
			held[i].Free()
			got[i] = nil
		}
	}
	for i, g := range got {
		if g == nil {
			continue
		}
		m := want[i]
		if !bytes.Equal(g.Blob, m.Blob) || g.RemainingBytes != m.RemainingBytes || g.Version != m.Version || g.Header.String() != m.Header.String() {
			t.Errorf("message %d: blob %d bytes of %x (want %d of %x), remaining %d (want %d), version %q, header %v",
				i, len(g.Blob), g.Blob[:min(1, len(g.Blob))], len(m.Blob), m.Blob[:1], g.RemainingBytes, m.RemainingBytes, g.Version, g.Header)
		}
		held[i].Free()
	}
	// A message cut short is an error, and holds nothing.
	raw, _ := want[0].Marshal()
	if err := c.Unmarshal(frames(raw[:len(raw)-10]), &pb.SnapshotResponse{}); err == nil {
		t.Error("a truncated message parsed without error")
	}
	if c.take() != nil {
		t.Error("a message that failed to parse left a buffer held")
	}
}
