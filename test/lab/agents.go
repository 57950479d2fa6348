package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// AgentConfigPath is the node's dr-agent config file.
func (l *Lab) AgentConfigPath(node string) string {
	return filepath.Join(l.agentDir(node), "config.yaml")
}

// AgentConfig is the configuration the lab gives node's agent.
func (l *Lab) AgentConfig(n string) (agentconfig.Config, error) {
	dataDir := l.DataDir(n)
	cfg := agentconfig.Config{
		NodeName: n,
		Listen:   l.AgentAddr(n),
		DataDir:  dataDir,
		TLS: mtls.Files{
			CA:   filepath.Join(l.agentDir(n), "ca.crt"),
			Cert: filepath.Join(l.agentDir(n), "tls.crt"),
			Key:  filepath.Join(l.agentDir(n), "tls.key"),
		},
		Restic: agentconfig.Restic{
			Binary:       l.Bin.Restic,
			PasswordFile: filepath.Join(l.agentDir(n), "restic", "password"),
		},
		StateDir:  filepath.Join(l.NodeRoot(n), "var", "lib", "dr-agent"),
		ClusterID: l.State.ClusterID,
		Store: objstore.Config{
			URL:           l.StoreURL(),
			Endpoint:      "http://" + l.minioEndpoint(),
			AccessKeyFile: filepath.Join(l.agentDir(n), "store", "access-key"),
			SecretKeyFile: filepath.Join(l.agentDir(n), "store", "secret-key"),
		},
	}
	metrics, err := l.port("metrics-" + n)
	if err != nil {
		return cfg, err
	}
	cfg.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", metrics)
	if n == l.State.Nodes[0] {
		cfg.WAL.Sources = []agentconfig.WALSource{{Name: WALSource, Spool: l.WALSpool(), Connection: l.PGConnection(), PGData: l.PGData()}}
		cfg.Drill.Checks = l.State.DrillChecks
	}
	if slices.Contains(l.EtcdNodes(), n) {
		// The leader's agent backs up the application's bucket. For the
		// real node these are the files install reads into the source's
		// Secret (deployAgent); its pod reads them from that Secret.
		creds := filepath.Join(l.agentDir(n), "app-s3")
		cfg.Buckets.Sources = []agentconfig.BucketSource{{Name: AppBucketSource, Interval: "2s", Bucket: objstore.Config{
			URL: "s3://" + AppBucket, Endpoint: l.AppS3Endpoint(), PathStyle: true,
			AccessKeyFile: filepath.Join(creds, "access-key"),
			SecretKeyFile: filepath.Join(creds, "secret-key"),
		}}}
		cfg.Etcd.Endpoint = l.etcdClientURL(n)
		cfg.Etcd.SnapshotKeyFile = l.SnapshotKeyPath()
		if l.State.EtcdRestore != "" {
			cmd := func(verb string) []string {
				return []string{l.State.LabBin, verb, "--dir", l.Dir, "--root", l.Root, "etcd-" + n}
			}
			cfg.Restore = agentconfig.Restore{Flavor: l.State.EtcdRestore, StopCommand: cmd("stop"), StartCommand: cmd("start")}
			if l.State.EtcdRestore == agentconfig.FlavorK3s {
				cfg.Restore.K3sBinary = filepath.Join(filepath.Dir(l.State.LabBin), "k3s-standin")
			}
		}
	}
	return cfg, nil
}

// K3sConfigPath is the node's k3s config file, which the k3s stand-in reads
// (node-name, and the peer URL real k3s derives from the node's IP).
func (l *Lab) K3sConfigPath(n string) string {
	return filepath.Join(l.NodeRoot(n), "etc", "rancher", "k3s", "config.yaml")
}

func (l *Lab) writeK3sConfig(n string) error {
	path := l.K3sConfigPath(n)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("node-name: %s\nstandin-peer-url: %s\n", n, l.etcdPeerURL(n))), 0o644)
}

// SetRestoreFlavor reconfigures the etcd members' agents to restore the
// given way (see Options.EtcdRestore) and restarts them.
func (l *Lab) SetRestoreFlavor(ctx context.Context, flavor string) error {
	l.State.EtcdRestore = flavor
	if err := l.saveState(); err != nil {
		return err
	}
	for _, n := range l.EtcdNodes() {
		if n == l.State.KubeNode {
			return errors.New("SetRestoreFlavor: the kube node's agent is a pod; redeploy it instead")
		}
		if _, err := l.proc("agent-"+n).stop(l.Dir, 30*time.Second); err != nil {
			return err
		}
	}
	return l.upAgents(ctx)
}

// SetDrillChecks gives the first node's agent these health checks
// (drill.checks, with its WAL source's database) and restarts the agents.
func (l *Lab) SetDrillChecks(ctx context.Context, checks []agentconfig.Check) error {
	l.State.DrillChecks = checks
	if err := l.saveState(); err != nil {
		return err
	}
	n := l.State.Nodes[0]
	if n == l.State.KubeNode {
		return errors.New("SetDrillChecks: the first node's agent is the kube node's pod; redeploy it instead")
	}
	if _, err := l.proc("agent-"+n).stop(l.Dir, 30*time.Second); err != nil {
		return err
	}
	return l.upAgents(ctx)
}

// SnapshotKeyPath is the age identity the lab's snapshots are encrypted to.
func (l *Lab) SnapshotKeyPath() string { return filepath.Join(l.Dir, "pki", "snapshot.key") }

// SnapshotIdentity is that identity: it decrypts the lab's snapshots, and
// the WAL and bucket copies its agents encrypt to it.
func (l *Lab) SnapshotIdentity() (age.Identity, error) {
	return dbsnap.LoadIdentity(l.SnapshotKeyPath())
}

// StartAgent runs one more dr-agent process with cfg, named name in the
// lab's pid and log files (so down stops it too); for tests that need an
// agent configured differently. Started again under the same name after a
// stop or kill, it is the same agent coming back.
func (l *Lab) StartAgent(ctx context.Context, name string, cfg agentconfig.Config) error {
	p := l.proc(name)
	dir := filepath.Join(l.Dir, "extra-agents", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := l.certifyAgent(&cfg, dir); err != nil {
		return err
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	if _, err := p.start(exec.Command(l.Bin.DRAgent, "serve", "--config", path)); err != nil {
		return err
	}
	if !slices.Contains(l.extra, name) {
		l.extra = append(l.extra, name)
	}
	return p.waitReady(ctx, l.Dir, 30*time.Second, dialCheck(cfg.Listen))
}

// certifyAgent gives an agent configured from another node's (a test's
// agent named pg64 made from agent-1's configuration, or one for the
// node whose agent is install's) a certificate for the node it is named,
// as enrollment would: the plugin checks the name on every dial.
func (l *Lab) certifyAgent(cfg *agentconfig.Config, dir string) error {
	if cfg.TLS.Cert != "" && certNamesNode(cfg.TLS.Cert, cfg.NodeName) {
		return nil
	}
	drDir := filepath.Join(l.Dir, "pki", "dr")
	ca, err := pki.LoadCA(filepath.Join(drDir, "ca.crt"), filepath.Join(drDir, "ca.key"))
	if err != nil {
		return err
	}
	kp, err := ca.Issue(agentLeaf(cfg.NodeName, false))
	if err != nil {
		return err
	}
	cfg.TLS.Cert, cfg.TLS.Key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	return kp.WriteFiles(cfg.TLS.Cert, cfg.TLS.Key)
}

// LogPath is the log file of a lab process.
func (l *Lab) LogPath(name string) string { return l.proc(name).logFile }

// FreePort picks a free loopback port.
func FreePort() (int, error) { return freePort(nil) }

// upAgents writes each node's agent config and starts the agents that are
// not running.
func (l *Lab) upAgents(ctx context.Context) error {
	var fns []func(context.Context) error
	for _, n := range l.State.Nodes {
		p := l.proc("agent-" + n)
		dataDir := l.DataDir(n)
		if err := os.MkdirAll(filepath.Join(dataDir, "storage"), 0o755); err != nil {
			return err
		}
		if !slices.Contains(l.EtcdNodes(), n) {
			if err := os.MkdirAll(filepath.Join(dataDir, "agent"), 0o755); err != nil {
				return err
			}
		}
		cfg, err := l.AgentConfig(n)
		if err != nil {
			return err
		}
		if slices.Contains(l.EtcdNodes(), n) {
			if err := l.writeK3sConfig(n); err != nil {
				return err
			}
		}
		password, err := os.ReadFile(l.ResticPasswordPath())
		if err != nil {
			return err
		}
		// The node's /var/lib/dr-agent, 0755 as the DaemonSet's hostPath
		// makes it, made before restic's cache would make it (and its
		// parents) 0700: a drill's scratch PostgreSQL runs as the
		// database's user and must reach its data directory below.
		if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
			return err
		}
		for d := cfg.StateDir; d != l.NodeRoot(n) && d != filepath.Dir(d); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				return err
			}
		}
		if err := writeSecretFiles(map[string]string{
			cfg.Store.AccessKeyFile: l.State.MinIOUser,
			cfg.Store.SecretKeyFile: l.State.MinIOSecret,
			cfg.Restic.PasswordFile: strings.TrimSpace(string(password)),
		}); err != nil {
			return err
		}
		for _, b := range cfg.Buckets.Sources {
			if err := writeSecretFiles(map[string]string{b.Bucket.AccessKeyFile: l.State.AppS3Key, b.Bucket.SecretKeyFile: l.State.AppS3Secret}); err != nil {
				return err
			}
		}
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(l.AgentConfigPath(n), data, 0o644); err != nil {
			return err
		}
		if n == l.State.KubeNode {
			continue // runs as the DaemonSet's pod
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
		cmd := exec.Command(l.Bin.DRAgent, "serve", "--config", l.AgentConfigPath(n))
		if slices.Contains(l.EtcdNodes(), n) {
			// What the k3s stand-in reads, as k3s reads its config file.
			cmd.Env = append(os.Environ(), "K3S_CONFIG_FILE="+l.K3sConfigPath(n))
		}
		if _, err := p.start(cmd); err != nil {
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
