package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/agent/config"
	"github.com/kubectl-dr/kubectl-dr/agent/mtls"
	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
)

// AgentConfigPath is the node's dr-agent config file.
func (l *Lab) AgentConfigPath(node string) string {
	return filepath.Join(l.agentDir(node), "config.yaml")
}

// upAgents writes each node's agent config and starts the agents that are
// not running.
func (l *Lab) upAgents(ctx context.Context) error {
	var fns []func(context.Context) error
	for i, n := range l.State.Nodes {
		p := l.proc("agent-" + n)
		dataDir := l.DataDir(n)
		if err := os.MkdirAll(filepath.Join(dataDir, "storage"), 0o755); err != nil {
			return err
		}
		if i >= l.State.EtcdMembers {
			if err := os.MkdirAll(filepath.Join(dataDir, "agent"), 0o755); err != nil {
				return err
			}
		}
		cfg := config.Config{
			NodeName: n,
			Listen:   l.AgentAddr(n),
			DataDir:  dataDir,
			TLS: mtls.Files{
				CA:   filepath.Join(l.agentDir(n), "ca.crt"),
				Cert: filepath.Join(l.agentDir(n), "tls.crt"),
				Key:  filepath.Join(l.agentDir(n), "tls.key"),
			},
			Restic:    config.Restic{Binary: l.Bin.Restic},
			StateDir:  filepath.Join(l.NodeRoot(n), "var", "lib", "dr-agent"),
			ClusterID: l.State.ClusterID,
			Store: objstore.Config{
				URL:           l.StoreURL(),
				Endpoint:      "http://" + l.minioEndpoint(),
				AccessKeyFile: filepath.Join(l.agentDir(n), "store", "access-key"),
				SecretKeyFile: filepath.Join(l.agentDir(n), "store", "secret-key"),
			},
		}
		if err := writeSecretFiles(map[string]string{
			cfg.Store.AccessKeyFile: l.State.MinIOUser,
			cfg.Store.SecretKeyFile: l.State.MinIOSecret,
		}); err != nil {
			return err
		}
		metrics, err := l.port("metrics-" + n)
		if err != nil {
			return err
		}
		cfg.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", metrics)
		if i < l.State.EtcdMembers {
			cfg.Etcd.Endpoint = l.etcdClientURL(n)
			cfg.Etcd.SnapshotKeyFile = filepath.Join(l.Dir, "pki", "snapshot.key")
		}
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(l.AgentConfigPath(n), data, 0o644); err != nil {
			return err
		}
		if pid, ok := p.pid(l.Dir); ok {
			if !newer(l.Bin.DRAgent, p.pidFile) {
				fmt.Fprintf(l.log, "agent %s: already running (pid %d)\n", n, pid)
				continue
			}
			// A rebuilt dr-agent replaces the running one.
			if _, err := p.stop(l.Dir, 30*time.Second); err != nil {
				return err
			}
			fmt.Fprintf(l.log, "agent %s: restarting with the rebuilt dr-agent\n", n)
		}
		if _, err := p.start(exec.Command(l.Bin.DRAgent, "serve", "--config", l.AgentConfigPath(n))); err != nil {
			return err
		}
		fmt.Fprintf(l.log, "agent %s: started on %s\n", n, l.AgentAddr(n))
		fns = append(fns, func(ctx context.Context) error {
			return p.waitReady(ctx, l.Dir, 30*time.Second, dialCheck(l.AgentAddr(n)))
		})
	}
	return parallel(ctx, fns...)
}

// StoreURL is the lab's store as kubectl dr names it.
func (l *Lab) StoreURL() string { return "s3://" + l.State.Bucket + "/lab" }

// MetricsURL is the node's agent metrics endpoint.
func (l *Lab) MetricsURL(node string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", l.State.Ports["metrics-"+node])
}

func writeSecretFiles(files map[string]string) error {
	for p, v := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// newer reports whether file a was modified after file b.
func newer(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && sa.ModTime().After(sb.ModTime())
}
