package cmdutil

import (
	"context"
	"fmt"
	"io"
	"os"
	osuser "os/user"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// Factory is everything a verb reaches outside itself through: the store,
// the agents, the API server and the snapshot key (velero's
// pkg/client/factory.go). kubectl dr runs with the one NewFactory builds
// from flags and environment; tests hand in their own.
type Factory interface {
	// BindFlags registers the global flags: kubectl's, --agent,
	// --agent-namespace and --tls-*.
	BindFlags(fs *pflag.FlagSet)
	// BindStoreFlags registers the flags naming the store, for the verbs
	// that read it directly.
	BindStoreFlags(fs *pflag.FlagSet)

	// AgentNamespace is where the agent pods and install's Secrets live.
	AgentNamespace() string
	// AgentOptions say how to find and dial the agents; nodes, when given,
	// restricts them to those nodes.
	AgentOptions(nodes []string) agentclient.Options

	// Clientset, DynamicClient and RESTMapper talk to the API server.
	Clientset() (kubernetes.Interface, error)
	DynamicClient() (dynamic.Interface, error)
	RESTMapper() (meta.RESTMapper, error)

	// StoreConfig is the store as flags and environment name it (URL empty
	// when they do not).
	StoreConfig() objstore.Config
	// StoreFromSecret reads the store settings install keeps in a Secret.
	StoreFromSecret(ctx context.Context) (objstore.Config, error)
	// OpenStore opens the cluster's part of the store.
	OpenStore(ctx context.Context) (objstore.Store, error)
	// ClusterID names the cluster in the store.
	ClusterID(ctx context.Context) (string, error)
	// SnapshotKey is the age identity that decrypts etcd snapshots: from
	// keyFile, else the environment, else install's Secret; nil when none.
	SnapshotKey(ctx context.Context, keyFile string) (*age.X25519Identity, error)
	// User names who runs the command, for the records that say so (a
	// drill's report): the kubeconfig's user, else the local user.
	User() string
}

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

// factory is the Factory built from the global flags and environment.
type factory struct {
	configFlags *genericclioptions.ConfigFlags

	agents         []string
	agentNamespace string
	tls            mtls.Files
	store          StoreFlags
	// warnings receives what does not stop a command.
	warnings io.Writer
}

// NewFactory returns the factory kubectl dr runs with: kubectl's flags
// plus its own; warnings go to warnings.
func NewFactory(warnings io.Writer) Factory {
	return &factory{
		configFlags:    genericclioptions.NewConfigFlags(true),
		agentNamespace: agentclient.DefaultNamespace,
		warnings:       warnings,
	}
}

func (f *factory) BindFlags(fs *pflag.FlagSet) {
	f.configFlags.AddFlags(fs)
	fs.StringArrayVar(&f.agents, "agent", nil, "reach the agent of NODE directly at HOST:PORT instead of through the API server (NODE=HOST:PORT, repeatable; default $"+EnvAgents+")")
	fs.StringVar(&f.agentNamespace, "agent-namespace", f.agentNamespace, "namespace of the dr-agent pods")
	fs.StringVar(&f.tls.CA, "tls-ca", "", "CA that signed the agents' certificates (default $"+EnvCA+")")
	fs.StringVar(&f.tls.Cert, "tls-cert", "", "client certificate for the agents (default $"+EnvCert+")")
	fs.StringVar(&f.tls.Key, "tls-key", "", "client key for the agents (default $"+EnvKey+")")
}

func (f *factory) AgentNamespace() string { return f.agentNamespace }

// AgentOptions resolves flags and environment into agent client options:
// agent pods found through the API server, plus any given with --agent or
// $KUBECTL_DR_AGENTS (which win for their node).
func (f *factory) AgentOptions(nodes []string) agentclient.Options {
	agents := f.agents
	if len(agents) == 0 {
		if env := os.Getenv(EnvAgents); env != "" {
			agents = strings.Split(env, ",")
		}
	}
	tls := f.tls
	fromEnv(&tls.CA, EnvCA)
	fromEnv(&tls.Cert, EnvCert)
	fromEnv(&tls.Key, EnvKey)
	return agentclient.Options{
		ClusterTLS: f.clusterTLS,
		AgentCA:    f.agentCA,
		Agents:     agents,
		Discover:   true,
		Warnings:   f.warnings,
		Namespace:  f.agentNamespace,
		Nodes:      nodes,
		TLS:        tls,
		RESTConfig: f.configFlags.ToRESTConfig,
		// Sent with the requests that must decrypt: the agents do not
		// hold the private key.
		SnapshotKey: agentclient.OnceKey(func(ctx context.Context) ([]byte, error) { return IdentityBytes(f.snapshotKeyFrom(ctx, "")) }),
	}
}

// clusterTLS reads the client certificate install keeps for every user
// allowed to read Secrets in the agents' namespace.
func (f *factory) clusterTLS(ctx context.Context) (mtls.Files, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := f.secret(ctx, ClientTLSSecret)
	if err != nil {
		return mtls.Files{}, err
	}
	return mtls.Files{CAPEM: data["ca.crt"], CertPEM: data["tls.crt"], KeyPEM: data["tls.key"], RetiredPEM: data[mtls.RetiredCAFile]}, nil
}

// agentCA reads install's CA, to enroll agents met unenrolled: only who
// may read that Secret can.
func (f *factory) agentCA(ctx context.Context) (*pki.CA, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	data, err := f.secret(ctx, agentclient.AgentCASecret)
	if err != nil {
		return nil, err
	}
	ca, err := pki.ParseCA(data["ca.crt"], data["ca.key"])
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", f.agentNamespace, agentclient.AgentCASecret, err)
	}
	return ca, nil
}

// Clientset talks to the API server with a short timeout per request:
// these reads are conveniences, and the cluster may be the thing that is
// down.
func (f *factory) Clientset() (kubernetes.Interface, error) {
	cfg, err := f.configFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// DynamicClient applies manifests and restored objects: thousands of
// requests in a row, so no client-side rate limit (client-go's default is
// 5 a second); the API server's priority and fairness is the limit.
func (f *factory) DynamicClient() (dynamic.Interface, error) {
	cfg, err := f.configFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	if cfg.QPS == 0 {
		cfg.QPS = -1
	}
	return dynamic.NewForConfig(cfg)
}

func (f *factory) RESTMapper() (meta.RESTMapper, error) { return f.configFlags.ToRESTMapper() }

func (f *factory) User() string {
	raw, err := f.configFlags.ToRawKubeConfigLoader().RawConfig()
	if err == nil {
		name := raw.CurrentContext
		if f.configFlags.Context != nil && *f.configFlags.Context != "" {
			name = *f.configFlags.Context
		}
		user := ""
		if c, ok := raw.Contexts[name]; ok {
			user = c.AuthInfo
		}
		if f.configFlags.AuthInfoName != nil && *f.configFlags.AuthInfoName != "" {
			user = *f.configFlags.AuthInfoName
		}
		if user != "" {
			return user + " (kubeconfig)"
		}
	}
	return LocalUser()
}

// LocalUser is user@host of this process.
func LocalUser() string {
	name := os.Getenv("USER")
	if u, err := osuser.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	if name == "" {
		name = "unknown user"
	}
	if host != "" {
		name += "@" + host
	}
	return name
}

func fromEnv(v *string, name string) {
	if *v == "" {
		*v = os.Getenv(name)
	}
}
