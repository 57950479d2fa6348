package etcdsnap

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
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
