package agentclient

import (
	"errors"
	"io"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// Explain turns a gRPC error into what a user can act on.
func Explain(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	switch {
	case st.Code() == codes.Unavailable && strings.Contains(msg, "certificate"):
		return "TLS handshake failed (" + msg + "): check that --tls-ca/--tls-cert/--tls-key come from the same install as the agent"
	case st.Code() == codes.Unavailable:
		return "unavailable (" + msg + "): is the agent running and the address right?"
	case st.Code() == codes.DeadlineExceeded:
		return "no answer in time: the agent may be overloaded or the network down"
	case st.Code() == codes.Unimplemented:
		return "the agent does not support this call (" + msg + "): upgrade the agents to match kubectl dr"
	}
	return st.Code().String() + ": " + msg
}

// IsEOF reports whether a stream ended normally.
func IsEOF(err error) bool { return errors.Is(err, io.EOF) }

// Reason is the agentv1.Reason* an agent's error carries ("" for errors
// that did not come from an agent, such as a failed dial). Match on it,
// never on the message.
func Reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == agentv1.ErrorDomain {
			return info.Reason
		}
	}
	return ""
}
