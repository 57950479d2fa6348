package etcdsnap

import (
	"fmt"
	"math/bits"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// The connection a snapshot streams over gets buffers that are not zeroed
// before reuse. gRPC's default pool clears every buffer it hands out, and
// its proto codec copies each message into such a buffer before parsing
// it: for a gigabyte stream that clearing was a tenth of the agent's CPU,
// on bytes overwritten at once. These buffers only ever hold the
// snapshot's own bytes, each filled in whole before it is read.
var streamBuffers = &dirtyPool{}

// snapshotDial are the dial options of a snapshot's etcd client.
func snapshotDial() []grpc.DialOption {
	return []grpc.DialOption{
		experimental.WithBufferPool(streamBuffers),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(streamCodec{})),
	}
}

// streamCodec is gRPC's proto codec, parsing from streamBuffers.
type streamCodec struct{}

func (streamCodec) Name() string { return "proto" }

func (streamCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (streamCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buf := data.MaterializeToBuffer(streamBuffers)
	defer buf.Free()
	// etcd's messages parse themselves (and copy what they keep).
	if m, ok := v.(interface{ Unmarshal([]byte) error }); ok {
		return m.Unmarshal(buf.ReadOnlyData())
	}
	switch m := v.(type) {
	case protoadapt.MessageV2:
		return proto.Unmarshal(buf.ReadOnlyData(), m)
	case protoadapt.MessageV1:
		return proto.Unmarshal(buf.ReadOnlyData(), protoadapt.MessageV2Of(m))
	}
	return fmt.Errorf("unmarshal: %T is not a proto message", v)
}

// blobCodec parses the snapshot stream's messages so that each blob is a
// window on the buffer the message arrived in (etcd's own parser copies
// it out: a gigabyte of copying per snapshot). The buffer is held for the
// caller, who takes it after each Recv and frees it once the blob has been
// consumed; until then the pool cannot hand it out again. One codec serves
// one stream, whose messages are parsed one at a time in Recv.
type blobCodec struct {
	streamCodec
	held mem.Buffer
}

func (c *blobCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*pb.SnapshotResponse)
	if !ok {
		return c.streamCodec.Unmarshal(data, v)
	}
	c.release()
	buf := data.MaterializeToBuffer(streamBuffers)
	if err := parseSnapshotResponse(buf.ReadOnlyData(), m); err != nil {
		buf.Free()
		return err
	}
	c.held = buf
	return nil
}

// take hands over the buffer the last message's blob points into (nil
// when it holds none).
func (c *blobCodec) take() mem.Buffer {
	b := c.held
	c.held = nil
	return b
}

// release frees a buffer nobody took.
func (c *blobCodec) release() {
	if c.held != nil {
		c.held.Free()
		c.held = nil
	}
}

// parseSnapshotResponse is etcd's SnapshotResponse parser but for the
// blob, which stays in b.
func parseSnapshotResponse(b []byte, m *pb.SnapshotResponse) error {
	*m = pb.SnapshotResponse{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("snapshot message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n >= 0 {
				m.Header = &pb.ResponseHeader{}
				if err := m.Header.Unmarshal(v); err != nil {
					return fmt.Errorf("snapshot message header: %w", err)
				}
			}
		case num == 2 && typ == protowire.VarintType:
			m.RemainingBytes, n = protowire.ConsumeVarint(b)
		case num == 3 && typ == protowire.BytesType:
			m.Blob, n = protowire.ConsumeBytes(b)
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			m.Version = string(v)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("snapshot message field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// dirtyPool keeps buffers by power-of-two capacity.
type dirtyPool struct{ tiers [48]sync.Pool }

var _ mem.BufferPool = (*dirtyPool)(nil)

func tier(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

func (p *dirtyPool) Get(n int) *[]byte {
	t := tier(n)
	if t >= len(p.tiers) {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<t)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return // not one of ours
	}
	if t := tier(c); t < len(p.tiers) {
		p.tiers[t].Put(b)
	}
}
