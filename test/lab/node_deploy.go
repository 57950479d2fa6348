package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// RedeployAgent applies the lab's DaemonSet again (after a test removed
// it) and waits for its pod.
func (l *Lab) RedeployAgent(ctx context.Context) error { return l.deployAgent(ctx) }

// deployAgent applies manifests/ through a lab overlay: the lab's image
// (never pulled), hostPaths pointing at the node's root in the lab, and the
// agent's config and secrets from that root. Then it waits for the pod.
func (l *Lab) deployAgent(ctx context.Context) error {
	node := l.State.KubeNode
	cfg, err := l.AgentConfig(node)
	if err != nil {
		return err
	}
	cfg.Restic.Binary = "/usr/local/bin/restic"
	// The pod sees the node root at the same path, so the files the
	// config names are where the process agents find theirs.
	key := filepath.Join(l.agentDir(node), "snapshot.key")
	if err := copyFile(l.SnapshotKeyPath(), key); err != nil {
		return err
	}
	cfg.Etcd.SnapshotKeyFile = key
	// The restore's host actions (`lab stop|start`) run on the host, where
	// the lab's binaries are: through nsenter, as the DaemonSet runs
	// systemctl for k3s.
	if len(cfg.Restore.StopCommand) > 0 {
		cfg.Restore.StopCommand = onHost(cfg.Restore.StopCommand)
		cfg.Restore.StartCommand = onHost(cfg.Restore.StartCommand)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	podConfig := filepath.Join(l.agentDir(node), "config-pod.yaml")
	if err := os.WriteFile(podConfig, data, 0o644); err != nil {
		return err
	}

	dir := filepath.Join(l.Dir, "manifests")
	base := filepath.Join(dir, "base")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	src := filepath.Join(l.Root, "manifests")
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(base, e.Name())); err != nil {
				return err
			}
		}
	}
	root := l.NodeRoot(node)
	_, port, _ := strings.Cut(cfg.Listen, ":")
	_, mp, _ := strings.Cut(cfg.MetricsAddress, ":")
	metricsPort, err := strconv.Atoi(mp)
	if err != nil {
		return fmt.Errorf("lab agent metrics address %q: %w", cfg.MetricsAddress, err)
	}
	patch := []map[string]any{
		{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": AgentImage},
		{"op": "replace", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"},
		{"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": []string{"serve", "--config", podConfig}},
		{"op": "replace", "path": "/spec/template/metadata/annotations/dr.kubectl.io~1grpc-port", "value": port},
		{"op": "replace", "path": "/spec/template/spec/volumes", "value": []map[string]any{
			{"name": "node-root", "hostPath": map[string]any{"path": root, "type": "Directory"}},
		}},
		{"op": "replace", "path": "/spec/template/spec/containers/0/volumeMounts", "value": []map[string]any{
			{"name": "node-root", "mountPath": root},
		}},
		// No kube-proxy in the lab: the agent reaches the API server (for
		// PersistentVolumes) on the node's loopback, as a hostNetwork pod can.
		{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}},
		{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": fmt.Sprint(l.State.Ports["kube-apiserver"])}},
		// What the k3s stand-in reads (it runs on the host through nsenter,
		// which keeps the environment), as k3s reads its config file.
		{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": map[string]any{"name": "K3S_CONFIG_FILE", "value": l.K3sConfigPath(node)}},
		// The probes ask the agent's health endpoint on the lab's port.
		{"op": "replace", "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/port", "value": metricsPort},
		{"op": "replace", "path": "/spec/template/spec/containers/0/livenessProbe/httpGet/port", "value": metricsPort},
		// A 2-core lab: no CPU request to block scheduling.
		{"op": "remove", "path": "/spec/template/spec/containers/0/resources"},
		{"op": "remove", "path": "/spec/template/spec/priorityClassName"},
	}
	patchJSON, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - base
patches:
  - target: {kind: DaemonSet, name: dr-agent}
    patch: '%s'
`, string(patchJSON))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		return err
	}
	_, existed := l.kubectl(ctx, "-n", "dr-system", "get", "daemonset", "dr-agent")
	if out, err := l.kubectl(ctx, "apply", "-k", dir); err != nil {
		return fmt.Errorf("apply the agent DaemonSet: %w\n%s", err, out)
	}
	// The tag stays the same; a rebuilt image replaces the running pod.
	sum, err := FileSHA256(filepath.Join(l.nodeDir("images"), "agent.tar"))
	if err != nil {
		return err
	}
	if existed == nil && sum != l.State.AgentImageSHA {
		if _, err := l.kubectl(ctx, "-n", "dr-system", "rollout", "restart", "daemonset/dr-agent"); err != nil {
			return err
		}
		fmt.Fprintf(l.log, "dr-agent DaemonSet: restarted for the rebuilt image\n")
	}
	l.State.AgentImageSHA = sum
	if err := l.saveState(); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "dr-agent DaemonSet: applied, waiting for its pod on %s\n", node)
	deadline := time.Now().Add(120 * time.Second)
	for {
		_, err := l.kubectl(ctx, "-n", "dr-system", "rollout", "status", "daemonset/dr-agent", "--timeout", "5s")
		if err == nil {
			// Ready as Kubernetes sees it; now the agent must answer.
			if err = dialCheck(cfg.Listen)(ctx); err == nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			pods, _ := l.kubectl(ctx, "-n", "dr-system", "get", "pods", "-o", "wide")
			events, _ := l.kubectl(ctx, "-n", "dr-system", "get", "events", "--sort-by", ".lastTimestamp")
			return fmt.Errorf("dr-agent pod not ready after 2 minutes: %v\n%s\n%s\nkubelet log: %s", err, pods, tail([]byte(events), 15), l.proc("kubelet").logFile)
		}
	}
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
