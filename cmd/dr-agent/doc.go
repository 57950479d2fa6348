// Command dr-agent is the kubectl dr node agent: the gRPC server of the
// DaemonSet and the node-local CLI for when no API server answers.
package main
