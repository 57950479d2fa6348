// Package agentv1 is the wire contract between kubectl-dr and dr-agent:
// agent.proto and restorebarrier.proto (the barrier of a restore across
// several servers), the code generated from them (hack/update-proto.sh), and the
// ErrorInfo reasons errors carry (reasons.go). It imports nothing of this
// module.
package agentv1
