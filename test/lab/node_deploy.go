package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// RedeployAgent installs the agent again (after a test removed it) and
// waits for its pod.
func (l *Lab) RedeployAgent(ctx context.Context) error { return l.deployAgent(ctx) }

// deployAgent puts the agent on the real node the way a user does: with
// `kubectl dr install`, the lab's store, keys and image. The lab adds only
// what a loopback lab must, through install's own flags and --set keys:
//
//   - the agents' certificates come from the lab's CA, created as Secrets
//     before install (which keeps certificates that chain to one CA), so
//     the lab's other agents, processes reached directly, trust the same
//     client certificate the plugin reads from the cluster;
//   - --api-server: the lab has no kube-proxy, so a host-network pod
//     reaches the API server on the node's loopback, not its Service;
//   - the restore's host actions: the lab's `lab stop|start` for its etcd
//     member, run in the host's namespaces as the DaemonSet runs systemctl
//     for k3s; the WAL source of the lab's database on the first node.
//
// The application bucket's source is given with --bucket-source, whose
// credentials install keeps in a Secret, as a user's.
func (l *Lab) deployAgent(ctx context.Context) error {
	node := l.State.KubeNode
	cfg, err := l.AgentConfig(node)
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(cfg.Listen, ":")
	agentPort, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("lab agent address %q: %w", cfg.Listen, err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", agentPort+1); cfg.MetricsAddress != want {
		return fmt.Errorf("the lab in %s gives node %s's agent health port %s, install renders %s (the gRPC port + 1): this lab's state predates it; run `hack/lab down && hack/lab clean`", l.Dir, node, cfg.MetricsAddress, want)
	}
	if err := l.agentSecrets(ctx, node); err != nil {
		return err
	}

	var set []string
	setKey := func(key string, value any) error {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(value); err != nil {
			return err
		}
		set = append(set, "--set", key+"="+strings.TrimSpace(b.String()))
		return nil
	}
	// An install-owned key: the agents send their token there.
	set = append(set, "--api-server", fmt.Sprintf("127.0.0.1:%d", l.State.Ports["kube-apiserver"]))
	if cfg.Etcd.Endpoint != "" && cfg.Etcd.Endpoint != agentconfig.DefaultEtcdEndpoint {
		if err := setKey("etcd.endpoint", cfg.Etcd.Endpoint); err != nil {
			return err
		}
	}
	// The host keys are install's own flags: config keys cannot set them.
	if r := cfg.Restore; r.Flavor != "" {
		set = append(set, "--restore-flavor", r.Flavor)
		if len(r.StopCommand) > 0 {
			for flag, argv := range map[string][]string{"--stop-command": onHost(r.StopCommand), "--start-command": onHost(r.StartCommand)} {
				var list strings.Builder
				enc := json.NewEncoder(&list)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(argv); err != nil {
					return err
				}
				set = append(set, flag, strings.TrimSpace(list.String()))
			}
		}
		if r.K3sBinary != "" {
			set = append(set, "--k3s-binary", r.K3sBinary)
		}
	}
	if len(cfg.WAL.Sources) > 0 {
		if err := setKey("wal.sources", cfg.WAL.Sources); err != nil {
			return err
		}
	}
	// The bucket source goes in as a user's does: install reads its key
	// files here and keeps them in the Secret the pod mounts.
	for _, b := range cfg.Buckets.Sources {
		spec := []string{"name=" + b.Name, "url=" + b.Bucket.URL, "endpoint=" + b.Bucket.Endpoint,
			"access-key-file=" + b.Bucket.AccessKeyFile, "secret-key-file=" + b.Bucket.SecretKeyFile}
		if b.Bucket.PathStyle {
			spec = append(spec, "path-style=true")
		}
		if b.Interval != "" {
			spec = append(spec, "interval="+b.Interval)
		}
		set = append(set, "--bucket-source", strings.Join(spec, ","))
	}

	args := append([]string{"install",
		"--store", cfg.Store.URL, "--s3-endpoint", cfg.Store.Endpoint,
		"--access-key-file", cfg.Store.AccessKeyFile, "--secret-key-file", cfg.Store.SecretKeyFile,
		"--snapshot-key-file", l.SnapshotKeyPath(), "--restic-password-file", l.ResticPasswordPath(),
		"--image", AgentImage, "--data-dir", cfg.DataDir, "--state-dir", cfg.StateDir,
		"--agent-port", port, "--timeout", "2m"}, set...)
	fmt.Fprintf(l.log, "dr-agent: kubectl dr %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, l.Bin.KubectlDR, args...)
	// Only the kubeconfig, as a user has: nothing of the lab's environment.
	cmd.Env = []string{"KUBECONFIG=" + filepath.Join(l.Dir, "kubeconfig"), "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		pods, _ := l.kubectl(ctx, "-n", "dr-system", "get", "pods", "-o", "wide")
		return fmt.Errorf("kubectl dr install on the lab: %w\n%s\n%s\nkubelet log: %s", err, out, pods, l.proc("kubelet").logFile)
	}
	fmt.Fprintf(l.log, "%s", out)

	// The tag stays the same; a rebuilt image replaces the running pod.
	sum, err := FileSHA256(filepath.Join(l.nodeDir("images"), "agent.tar"))
	if err != nil {
		return err
	}
	if l.State.AgentImageSHA != "" && sum != l.State.AgentImageSHA {
		if _, err := l.kubectl(ctx, "-n", "dr-system", "rollout", "restart", "daemonset/dr-agent"); err != nil {
			return err
		}
		if _, err := l.kubectl(ctx, "-n", "dr-system", "rollout", "status", "daemonset/dr-agent", "--timeout", "2m"); err != nil {
			return err
		}
		if err := dialCheck(cfg.Listen)(ctx); err != nil {
			return fmt.Errorf("dr-agent after the restart for the rebuilt image: %w", err)
		}
		fmt.Fprintf(l.log, "dr-agent DaemonSet: restarted for the rebuilt image\n")
	}
	l.State.AgentImageSHA = sum
	return l.saveState()
}

// agentSecrets creates the agents' TLS Secrets from the lab's CA where
// they are missing, in the form install keeps them.
func (l *Lab) agentSecrets(ctx context.Context, node string) error {
	if _, err := l.kubectl(ctx, "get", "namespace", "dr-system"); err != nil {
		if out, err := l.kubectl(ctx, "create", "namespace", "dr-system"); err != nil {
			return fmt.Errorf("create namespace dr-system: %w\n%s", err, out)
		}
	}
	pkiDir := filepath.Join(l.Dir, "pki", "dr")
	secrets := map[string][3]string{
		"dr-agent-tls":  {filepath.Join(pkiDir, "ca.crt"), filepath.Join(l.agentDir(node), "tls.crt"), filepath.Join(l.agentDir(node), "tls.key")},
		"dr-client-tls": {filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "client.crt"), filepath.Join(pkiDir, "client.key")},
	}
	// The CA itself, as install keeps it (never mounted): install keeps
	// the lab's CA instead of making one, and enrolls the node's agent.
	if _, err := l.kubectl(ctx, "-n", "dr-system", "get", "secret", "dr-agent-ca"); err != nil {
		if out, err := l.kubectl(ctx, "-n", "dr-system", "create", "secret", "generic", "dr-agent-ca",
			"--from-file=ca.crt="+filepath.Join(pkiDir, "ca.crt"), "--from-file=ca.key="+filepath.Join(pkiDir, "ca.key")); err != nil {
			return fmt.Errorf("create Secret dr-system/dr-agent-ca from the lab's CA: %w\n%s", err, out)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		if _, err := l.kubectl(ctx, "-n", "dr-system", "get", "secret", name); err == nil {
			continue
		}
		f := secrets[name]
		if out, err := l.kubectl(ctx, "-n", "dr-system", "create", "secret", "generic", name,
			"--from-file=ca.crt="+f[0], "--from-file=tls.crt="+f[1], "--from-file=tls.key="+f[2]); err != nil {
			return fmt.Errorf("create Secret dr-system/%s from the lab's CA: %w\n%s", name, err, out)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

// FileSHA256 is the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// onHost runs argv in the host's namespaces from the agent's pod
// (privileged, hostPID), entered through the kubelet's: where the lab runs
// in a VM whose init is not ours to enter (nsenter -t 1 is refused), the
// kubelet the lab started is in the host's namespaces all the same.
func onHost(argv []string) []string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return []string{"/bin/sh", "-c", `set -- $(busybox pidof kubelet) && exec nsenter -t "$1" -m -u -i -n -p -- ` + strings.Join(quoted, " ")}
}
