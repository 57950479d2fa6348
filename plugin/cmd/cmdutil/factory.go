package cmdutil

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// Environment variables read where a flag is not given (the lab's
// `hack/lab env` exports them).
const (
	EnvAgents = "KUBECTL_DR_AGENTS"
	EnvCA     = "KUBECTL_DR_CA"
	EnvCert   = "KUBECTL_DR_CERT"
	EnvKey    = "KUBECTL_DR_KEY"
)

// ClientTLSSecret holds the plugin's client certificate (ca.crt, tls.crt,
// tls.key); `kubectl dr install` creates it and commands read it when no
// --tls-* flag or environment variable names one.
const ClientTLSSecret = "dr-client-tls"

// Factory turns the global flags into clients; commands get everything
// from it so tests can hand in the lab.
type Factory struct {
	ConfigFlags *genericclioptions.ConfigFlags

	Agents         []string
	AgentNamespace string
	TLS            mtls.Files
	Store          StoreFlags
	// ErrOut receives warnings.
	ErrOut io.Writer
}

// NewFactory returns a factory with kubectl's flags.
func NewFactory() *Factory {
	return &Factory{
		ConfigFlags:    genericclioptions.NewConfigFlags(true),
		AgentNamespace: agentclient.DefaultNamespace,
	}
}

// AddFlags registers the global flags.
func (f *Factory) AddFlags(fs *pflag.FlagSet) {
	f.ConfigFlags.AddFlags(fs)
	fs.StringArrayVar(&f.Agents, "agent", nil, "reach the agent of NODE directly at HOST:PORT instead of through the API server (NODE=HOST:PORT, repeatable; default $"+EnvAgents+")")
	fs.StringVar(&f.AgentNamespace, "agent-namespace", f.AgentNamespace, "namespace of the dr-agent pods")
	fs.StringVar(&f.TLS.CA, "tls-ca", "", "CA that signed the agents' certificates (default $"+EnvCA+")")
	fs.StringVar(&f.TLS.Cert, "tls-cert", "", "client certificate for the agents (default $"+EnvCert+")")
	fs.StringVar(&f.TLS.Key, "tls-key", "", "client key for the agents (default $"+EnvKey+")")
}

// AgentOptions resolves flags and environment into agent client options:
// agent pods found through the API server, plus any given with --agent or
// $KUBECTL_DR_AGENTS (which win for their node).
func (f *Factory) AgentOptions(nodes []string) agentclient.Options {
	agents := f.Agents
	if len(agents) == 0 {
		if env := os.Getenv(EnvAgents); env != "" {
			agents = strings.Split(env, ",")
		}
	}
	tls := f.TLS
	fromEnv(&tls.CA, EnvCA)
	fromEnv(&tls.Cert, EnvCert)
	fromEnv(&tls.Key, EnvKey)
	return agentclient.Options{
		ClusterTLS: f.clusterTLS,
		Agents:     agents,
		Discover:   true,
		Warnings:   f.ErrOut,
		Namespace:  f.AgentNamespace,
		Nodes:      nodes,
		TLS:        tls,
		RESTConfig: f.ConfigFlags.ToRESTConfig,
	}
}

// clusterTLS reads the client certificate install keeps for every user
// allowed to read Secrets in the agents' namespace.
func (f *Factory) clusterTLS(ctx context.Context) (mtls.Files, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := f.secret(ctx, ClientTLSSecret)
	if err != nil {
		return mtls.Files{}, err
	}
	return mtls.Files{CAPEM: data["ca.crt"], CertPEM: data["tls.crt"], KeyPEM: data["tls.key"]}, nil
}

func fromEnv(v *string, name string) {
	if *v == "" {
		*v = os.Getenv(name)
	}
}
