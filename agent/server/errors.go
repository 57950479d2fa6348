package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// failure is an RPC error with a reason the plugin can match
// (agentv1.Reason*); the interceptors add this node's name.
func failure(code codes.Code, reason, format string, args ...any) error {
	st, err := status.New(code, fmt.Sprintf(format, args...)).WithDetails(&errdetails.ErrorInfo{
		Reason: reason, Domain: agentv1.ErrorDomain,
	})
	if err != nil {
		return status.Errorf(code, format, args...)
	}
	return st.Err()
}

// withErrorInfo makes sure every error leaving the agent carries an
// ErrorInfo with a reason (the code's name when the handler gave none) and
// the node's name.
func (s *Server) withErrorInfo(err error) error {
	if err == nil {
		return nil
	}
	p := status.Convert(err).Proto()
	for i, d := range p.Details {
		var info errdetails.ErrorInfo
		if d.UnmarshalTo(&info) != nil || info.Domain != agentv1.ErrorDomain {
			continue
		}
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[agentv1.MetadataNode] = s.cfg.NodeName
		if a, aerr := anypb.New(&info); aerr == nil {
			p.Details[i] = a
		}
		return status.FromProto(p).Err()
	}
	a, aerr := anypb.New(&errdetails.ErrorInfo{
		Reason:   codeReason(codes.Code(p.Code)),
		Domain:   agentv1.ErrorDomain,
		Metadata: map[string]string{agentv1.MetadataNode: s.cfg.NodeName},
	})
	if aerr != nil {
		return err
	}
	p.Details = append(p.Details, a)
	return status.FromProto(p).Err()
}

// codeReason is a status code's name as a reason: FailedPrecondition ->
// FAILED_PRECONDITION.
func codeReason(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func (s *Server) unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, s.withErrorInfo(err)
}

func (s *Server) streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return s.withErrorInfo(handler(srv, ss))
}

// GRPCServer returns a gRPC server serving this agent, with its
// interceptors (errors carry ErrorInfo; calls wait out a reload), on top of
// opts (transport credentials).
func (s *Server) GRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts,
		grpc.ChainUnaryInterceptor(s.unaryErrors, s.unaryBusy),
		grpc.ChainStreamInterceptor(s.streamErrors, s.streamBusy))
	gs := grpc.NewServer(opts...)
	agentv1.RegisterAgentServiceServer(gs, s)
	agentv1.RegisterRestoreBarrierServiceServer(gs, restoreBarrier{s: s})
	agentv1.RegisterBucketServiceServer(gs, &bucketServer{s: s})
	agentv1.RegisterK3SSnapshotServiceServer(gs, k3sSnapshots{s: s})
	agentv1.RegisterRecoverServiceServer(gs, recoverServer{s: s})
	agentv1.RegisterDrillServiceServer(gs, drillServer{s: s})
	agentv1.RegisterPostgresRecoveryServiceServer(gs, pgRecoveryServer{s: s})
	agentv1.RegisterIdentityServiceServer(gs, identityServer{s: s})
	return gs
}
