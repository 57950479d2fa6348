package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// The real node: containerd (Debian's, with runc and the CNI plugins), a
// kubelet, kube-controller-manager and kube-scheduler, so the agent runs as
// the DaemonSet's pod on State.KubeNode and kubectl dr reaches it through
// the API server's port-forward.

func (l *Lab) nodeDir(parts ...string) string {
	return filepath.Join(append([]string{l.Dir, "kubenode"}, parts...)...)
}

func (l *Lab) containerdSock() string { return l.nodeDir("containerd", "containerd.sock") }

func checkNodeTools() error {
	var missing []string
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "/usr/lib/cni/bridge")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab's Kubernetes node needs %s: apt-get install -y containerd runc containernetworking-plugins iptables busybox-static", strings.Join(missing, ", "))
	}
	return nil
}

func (l *Lab) upNode(ctx context.Context) error {
	if l.State.KubeNode == "" {
		return nil
	}
	if err := checkNodeTools(); err != nil {
		return err
	}
	if err := l.claimHost(); err != nil {
		return err
	}
	if err := l.recordHost(); err != nil {
		return err
	}
	if err := l.upContainerd(ctx); err != nil {
		return err
	}
	if err := l.importImages(ctx); err != nil {
		return err
	}
	if err := parallel(ctx, l.upControllerManager, l.upScheduler, l.upKubelet); err != nil {
		return err
	}
	return l.deployAgent(ctx)
}

func (l *Lab) upContainerd(ctx context.Context) error {
	p := l.proc("containerd")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "containerd: already running (pid %d)\n", pid)
		return nil
	}
	conf := l.nodeDir("cni", "net.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	// A bridge with host-local addresses: enough for the node to be Ready;
	// the agent pod itself uses the host's network.
	cni := `{"cniVersion":"0.4.0","name":"dr-lab","plugins":[{"type":"bridge","bridge":"drlab0","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	if err := os.WriteFile(filepath.Join(conf, "10-dr-lab.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # runc's "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, l.nodeDir("containerd", "root"), l.nodeDir("containerd", "state"), l.containerdSock(), PauseImage, conf)
	path := l.nodeDir("containerd", "config.toml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	if _, err := p.start(exec.Command("containerd", "--config", path)); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "containerd: started on %s\n", l.containerdSock())
	return p.waitReady(ctx, l.Dir, 30*time.Second, func(ctx context.Context) error {
		return exec.CommandContext(ctx, "ctr", "--address", l.containerdSock(), "version").Run()
	})
}

// importImages builds the agent and pause images from static binaries and
// imports them into containerd's k8s.io namespace.
func (l *Lab) importImages(ctx context.Context) error {
	dir := l.nodeDir("images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/dr-agent", "./test/lab/cmd/pause")
	build.Dir = l.Root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build static dr-agent and pause: %w\n%s", err, out)
	}
	images := map[string]ImageSpec{
		"agent.tar": AgentImageSpec(filepath.Join(dir, "dr-agent"), l.Bin.Restic),
		"pause.tar": {Tag: PauseImage, Files: []ImageFile{{Src: filepath.Join(dir, "pause"), Dst: "/pause", Mode: 0o755}}, Entrypoint: []string{"/pause"}},
	}
	for file, spec := range images {
		out := filepath.Join(dir, file)
		if err := WriteImage(spec, out); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "ctr", "--address", l.containerdSock(), "-n", "k8s.io", "images", "import", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("import %s into containerd: %w\n%s", file, err, b)
		}
	}
	fmt.Fprintf(l.log, "images: imported %s and %s\n", AgentImage, PauseImage)
	return nil
}

// AgentImageSpec is the dr-agent image: the agent, the pinned restic and
// busybox's nsenter for host actions.
func AgentImageSpec(agent, restic string) ImageSpec {
	spec := ImageSpec{
		Tag: AgentImage,
		Files: []ImageFile{
			{Src: agent, Dst: "/usr/local/bin/dr-agent", Mode: 0o755},
			{Src: restic, Dst: "/usr/local/bin/restic", Mode: 0o755},
		},
		Entrypoint: []string{"/usr/local/bin/dr-agent"},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		spec.Files = append(spec.Files, ImageFile{Src: "/bin/busybox", Dst: "/bin/busybox", Mode: 0o755})
		spec.Symlinks = map[string]string{"/usr/bin/nsenter": "/bin/busybox", "/bin/sh": "/bin/busybox"}
	}
	return spec
}

func (l *Lab) upControllerManager(ctx context.Context) error {
	p := l.proc("kube-controller-manager")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "kube-controller-manager: already running (pid %d)\n", pid)
		return nil
	}
	port, err := l.port("kube-controller-manager")
	if err != nil {
		return err
	}
	kube := filepath.Join(l.Dir, "pki", "kube")
	if _, err := p.start(exec.Command(l.Bin.KubeControllerManager,
		"--kubeconfig", filepath.Join(l.Dir, "kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--cert-dir", l.nodeDir("kube-controller-manager"),
		"--leader-elect=false",
		"--service-account-private-key-file", filepath.Join(kube, "sa.key"),
		"--root-ca-file", filepath.Join(kube, "ca.crt"),
		"--use-service-account-credentials=false",
		"--controllers", "*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle",
	)); err != nil {
		return err
	}
	return p.waitReady(ctx, l.Dir, 60*time.Second, dialCheck(fmt.Sprintf("127.0.0.1:%d", port)))
}

func (l *Lab) upScheduler(ctx context.Context) error {
	p := l.proc("kube-scheduler")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "kube-scheduler: already running (pid %d)\n", pid)
		return nil
	}
	port, err := l.port("kube-scheduler")
	if err != nil {
		return err
	}
	if _, err := p.start(exec.Command(l.Bin.KubeScheduler,
		"--kubeconfig", filepath.Join(l.Dir, "kubeconfig"),
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--cert-dir", l.nodeDir("kube-scheduler"),
		"--leader-elect=false",
	)); err != nil {
		return err
	}
	return p.waitReady(ctx, l.Dir, 60*time.Second, dialCheck(fmt.Sprintf("127.0.0.1:%d", port)))
}

func (l *Lab) upKubelet(ctx context.Context) error {
	p := l.proc("kubelet")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "kubelet: already running (pid %d)\n", pid)
		return nil
	}
	port, err := l.port("kubelet")
	if err != nil {
		return err
	}
	healthz, err := l.port("kubelet-healthz")
	if err != nil {
		return err
	}
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// Loopback only. Anonymous access with AlwaysAllow is acceptable
		// solely because this kubelet listens on 127.0.0.1 in a throwaway lab.
		"address":            "127.0.0.1",
		"port":               port,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        healthz,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization":            map[string]any{"mode": "AlwaysAllow"},
		"cgroupDriver":             "cgroupfs",
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"containerRuntimeEndpoint": "unix://" + l.containerdSock(),
		// Never collect the imported images: there is no registry to pull
		// them back from.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%",
		},
		"resolvConf":          "",
		"serializeImagePulls": false,
		// A changed ConfigMap reaches the pods on their next sync (default
		// every minute); kubectl dr config set waits for it.
		"syncFrequency": "10s",
		"registerNode":  true,
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	dir := l.nodeDir("kubelet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return err
	}
	if _, err := p.start(exec.Command(l.Bin.Kubelet,
		"--config", cfgPath,
		"--kubeconfig", filepath.Join(l.Dir, "kubeconfig"),
		"--root-dir", filepath.Join(dir, "root"),
		"--cert-dir", filepath.Join(dir, "pki"),
		"--hostname-override", l.State.KubeNode,
		"--node-ip", "127.0.0.1",
		"--v", "1",
	)); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "kubelet: started for node %s\n", l.State.KubeNode)
	return p.waitReady(ctx, l.Dir, 90*time.Second, func(ctx context.Context) error {
		out, err := l.kubectl(ctx, "get", "node", l.State.KubeNode, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "True" {
			return fmt.Errorf("node %s not Ready (%q)", l.State.KubeNode, out)
		}
		return l.setNodeAddress(ctx)
	})
}

// setNodeAddress gives the node the address 127.0.0.1. The kubelet refuses
// a loopback node IP ("nodeIP can't be loopback address") and then leaves
// the node without addresses, so the API server could not reach it for
// port-forwards; the status it keeps sending does not overwrite this.
func (l *Lab) setNodeAddress(ctx context.Context) error {
	out, err := l.kubectl(ctx, "get", "node", l.State.KubeNode, "-o", "jsonpath={.status.addresses}")
	if err != nil || strings.Contains(out, "127.0.0.1") {
		return err
	}
	_, err = l.kubectl(ctx, "patch", "node", l.State.KubeNode, "--subresource=status", "--type=merge",
		"-p", `{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}`)
	return err
}

// kubectl runs the lab's kubectl against the lab's API server.
func (l *Lab) kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.Bin.Kubectl, append([]string{"--kubeconfig", filepath.Join(l.Dir, "kubeconfig")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// hostOwner records which lab runs this machine's Kubernetes node: two
// kubelets on one host fight over /var/lib/kubelet's sockets and remove
// each other's pod cgroups.
const hostOwner = "/run/kubectl-dr-lab-node"

func (l *Lab) claimHost() error {
	if data, err := os.ReadFile(hostOwner); err == nil {
		owner := strings.TrimSpace(string(data))
		if owner != l.Dir {
			if other, err := Open(owner, l.Root); err == nil && other.hasLiveNode() {
				return fmt.Errorf("the lab in %s already runs a Kubernetes node on this machine (one kubelet per host): stop it first with `hack/lab down --dir %s`", owner, owner)
			}
		}
	}
	return os.WriteFile(hostOwner, []byte(l.Dir+"\n"), 0o644)
}

func (l *Lab) hasLiveNode() bool {
	for _, name := range []string{"kubelet", "containerd"} {
		if _, ok := l.proc(name).pid(l.Dir); ok {
			return true
		}
	}
	return false
}

func (l *Lab) releaseHost() {
	if data, err := os.ReadFile(hostOwner); err == nil && strings.TrimSpace(string(data)) == l.Dir {
		os.Remove(hostOwner)
	}
}
