// Package agentv1 is the wire contract between kubectl-dr and dr-agent:
// agent.proto and restorebarrier.proto (the barrier of a restore across
// several servers), recover.proto (a restore's preflight and the user's
// health checks), the other areas' services, the code generated from them (hack/update-proto.sh), and the
// ErrorInfo reasons errors carry (reasons.go). It imports nothing of this
// module.
package agentv1
