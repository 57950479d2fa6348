// Package agentv1 is the wire contract between kubectl-dr and dr-agent:
// agent.proto, the code generated from it (hack/update-proto.sh), and the
// ErrorInfo reasons errors carry (reasons.go). It imports nothing of this
// module.
package agentv1
