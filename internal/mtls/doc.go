// Package mtls builds the TLS configurations of the agents' gRPC: the agent
// demands a client certificate signed by the configured CA, and the plugin
// presents one and checks the agent's.
package mtls
