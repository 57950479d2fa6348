// Package server is the agent's gRPC service. It stays thin: each RPC
// converts proto to the engine's types, calls the engine under
// agent/internal that owns the work, and maps its errors to status codes
// with ErrorInfo reasons (agentv1.Reason*). It holds no domain logic.
package server
