package agentclient

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// identityField is the field of every request that must decrypt (restore
// plan parts, previews, preflights, drill parts, PostgreSQL restores): the
// agents hold only the snapshot key's public recipient.
const identityField = "snapshot_identity"

// SnapshotKeyFunc returns the snapshot key (an age identity,
// AGE-SECRET-KEY-1...) to send with a request that must decrypt; nil
// bytes and a nil error: there is none.
type SnapshotKeyFunc func(ctx context.Context) ([]byte, error)

// OnceKey calls load at most once and keeps what it returned.
func OnceKey(load SnapshotKeyFunc) SnapshotKeyFunc {
	var (
		once sync.Once
		key  []byte
		err  error
	)
	return func(ctx context.Context) ([]byte, error) {
		once.Do(func() { key, err = load(ctx) })
		return key, err
	}
}

// keyFiller puts the snapshot key in every request that has the field and
// leaves it empty: one place, so that no command forgets it. The caller's
// message is not changed (a copy is sent). When the agent answers that the
// key was needed, the error says why the plugin had none.
type keyFiller struct {
	load SnapshotKeyFunc
	// peer, when set, must have proved its node: the key goes only to an
	// enrolled agent.
	peer *peer
}

// fill returns the message to send, and why no key went with it when one
// could have.
func (k keyFiller) fill(ctx context.Context, cc *grpc.ClientConn, msg any) (any, string) {
	m, ok := msg.(proto.Message)
	if !ok || k.load == nil {
		return msg, ""
	}
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName(identityField)
	if fd == nil || fd.Kind() != protoreflect.BytesKind || len(r.Get(fd).Bytes()) > 0 {
		return msg, ""
	}
	if k.peer != nil {
		if !k.peer.proven(ctx, cc) {
			return msg, fmt.Sprintf("kubectl dr sends the snapshot key only to an agent whose certificate names its node, and node %s's agent serves the shared bootstrap certificate: run kubectl dr install to enroll it", k.peer.node)
		}
	}
	key, err := k.load(ctx)
	switch {
	case err != nil:
		return msg, fmt.Sprintf("kubectl dr could not read the snapshot key: %v", err)
	case len(key) == 0:
		return msg, "kubectl dr found no snapshot key: set $DR_SNAPSHOT_KEY to a file holding it, or check the install's Secret dr-snapshot-key"
	}
	c := proto.Clone(m)
	c.ProtoReflect().Set(fd, protoreflect.ValueOfBytes(key))
	return c, ""
}

// explain adds why to an agent's error that says the key was needed.
func explain(err error, why string) error {
	if err == nil || why == "" || Reason(err) != agentv1.ReasonSnapshotKeyNeeded {
		return err
	}
	st := status.Convert(err).Proto()
	st.Message += " (" + why + ")"
	return status.FromProto(st).Err()
}

func (k keyFiller) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	req, why := k.fill(ctx, cc, req)
	return explain(invoker(ctx, method, req, reply, cc, opts...), why)
}

func (k keyFiller) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &keyStream{ClientStream: s, k: k, ctx: ctx, cc: cc}, nil
}

// keyStream fills the request of a server stream and explains its error.
type keyStream struct {
	grpc.ClientStream
	k   keyFiller
	ctx context.Context
	cc  *grpc.ClientConn
	why string
}

func (s *keyStream) SendMsg(m any) error {
	m, s.why = s.k.fill(s.ctx, s.cc, m)
	return s.ClientStream.SendMsg(m)
}

func (s *keyStream) RecvMsg(m any) error {
	return explain(s.ClientStream.RecvMsg(m), s.why)
}
