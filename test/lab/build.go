package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// component is a third-party binary the lab builds from a pinned module.
type component struct {
	name string
	// module dir relative to the repository root ("." is the main module,
	// where restic is a tool line).
	moduleDir string
	// versionOf is the module whose version keys the cache.
	versionOf string
	// pkgs maps output binary name to package path.
	pkgs    map[string]string
	ldflags string
	env     []string
	// variant tells apart builds of one version with other settings.
	variant string
}

var components = []component{
	{
		name: "etcd", moduleDir: "hack/tools/etcd", versionOf: "go.etcd.io/etcd/server/v3",
		pkgs: map[string]string{"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3", "etcdutl": "go.etcd.io/etcd/etcdutl/v3"},
	},
	{
		name: "kube", moduleDir: "hack/tools/kube", versionOf: "k8s.io/kubernetes",
		// kubectl too: a fresh machine may have none, and this one matches the
		// server's version.
		pkgs: map[string]string{
			"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
			"kubectl":                 "k8s.io/kubernetes/cmd/kubectl",
			"kubelet":                 "k8s.io/kubernetes/cmd/kubelet",
			"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
			"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
		},
		// The same flags every time: a changed flag misses the build cache.
		ldflags: "-X k8s.io/component-base/version.gitVersion=v1.35.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35",
	},
	{
		name: "minio", moduleDir: "hack/tools/minio", versionOf: "github.com/minio/minio",
		pkgs: map[string]string{"minio": "github.com/minio/minio"},
	},
	{
		name: "seaweedfs", moduleDir: "hack/tools/seaweedfs", versionOf: "github.com/seaweedfs/seaweedfs",
		pkgs: map[string]string{"weed": "github.com/seaweedfs/seaweedfs/weed"},
	},
	{
		// Static, so the same binary runs in the agent image.
		name: "restic", moduleDir: ".", versionOf: "github.com/restic/restic", variant: "static",
		pkgs: map[string]string{"restic": "github.com/restic/restic/cmd/restic"},
		env:  []string{"CGO_ENABLED=0"},
	},
}

// CacheDir is where built binaries are kept, by component and version.
func CacheDir() string {
	if d := os.Getenv("DR_LAB_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "kubectl-dr", "bin")
}

// Binaries are the paths of every binary the lab runs.
type Binaries struct {
	Etcd, Etcdctl, Etcdutl, KubeAPIServer, Kubectl, MinIO, Restic string
	// SeaweedFS is the application's object storage (weed).
	SeaweedFS                                     string
	Kubelet, KubeControllerManager, KubeScheduler string
	KubectlDR, DRAgent                            string
	// Lab is the lab's own CLI (test/lab/cmd/lab): restores' host actions.
	Lab string
	// K3sStandin stands in for the k3s binary's cluster reset
	// (test/lab/cmd/k3s-standin): k3s cannot be built here.
	K3sStandin string
	// Dirs to put in front of PATH.
	Dirs []string
}

// Build builds (or finds in the cache) every third-party binary, and builds
// kubectl-dr and dr-agent from the repository into outDir.
func Build(ctx context.Context, root, outDir string, log io.Writer) (*Binaries, error) {
	cache := CacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create binary cache: %w", err)
	}
	unlock, err := lockCache(cache)
	if err != nil {
		return nil, err
	}
	defer unlock()

	b := &Binaries{}
	paths := map[string]string{}
	for _, c := range components {
		dir, err := c.ensure(ctx, root, cache, log)
		if err != nil {
			return nil, err
		}
		b.Dirs = append(b.Dirs, dir)
		for bin := range c.pkgs {
			paths[bin] = filepath.Join(dir, bin)
		}
	}
	b.Etcd, b.Etcdctl, b.Etcdutl = paths["etcd"], paths["etcdctl"], paths["etcdutl"]
	b.KubeAPIServer, b.Kubectl = paths["kube-apiserver"], paths["kubectl"]
	b.MinIO, b.Restic = paths["minio"], paths["restic"]
	b.SeaweedFS = paths["weed"]
	b.Kubelet, b.KubeControllerManager, b.KubeScheduler = paths["kubelet"], paths["kube-controller-manager"], paths["kube-scheduler"]

	fmt.Fprintf(log, "building kubectl-dr and dr-agent into %s\n", outDir)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", outDir+"/", "./cmd/kubectl-dr", "./cmd/dr-agent", "./test/lab/cmd/lab", "./test/lab/cmd/k3s-standin")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build kubectl-dr and dr-agent: %w\n%s", err, out)
	}
	b.KubectlDR, b.DRAgent = filepath.Join(outDir, "kubectl-dr"), filepath.Join(outDir, "dr-agent")
	b.Lab = filepath.Join(outDir, "lab")
	b.K3sStandin = filepath.Join(outDir, "k3s-standin")
	b.Dirs = append([]string{outDir}, b.Dirs...)
	return b, nil
}

// lockCache holds the binary cache: two test binaries may build at once;
// one builds, the other waits.
func lockCache(cache string) (func(), error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create binary cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock binary cache: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock binary cache: %w", err)
	}
	return func() {
		syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}, nil
}

func (c component) ensure(ctx context.Context, root, cache string, log io.Writer) (string, error) {
	modDir := filepath.Join(root, c.moduleDir)
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", c.versionOf)
	cmd.Dir = modDir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find pinned version of %s in %s: %w", c.versionOf, modDir, exitDetail(err))
	}
	version := strings.TrimSpace(string(out))
	dir := filepath.Join(cache, c.name+"-"+version)
	if c.variant != "" {
		dir += "-" + c.variant
	}
	complete := true
	for bin := range c.pkgs {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			complete = false
		}
	}
	if complete {
		return dir, nil
	}
	fmt.Fprintf(log, "building %s %s (cold: minutes; cached afterwards in %s)\n", c.name, version, dir)
	tmp, err := os.MkdirTemp(cache, ".build-"+c.name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for bin, pkg := range c.pkgs {
		args := []string{"build", "-o", filepath.Join(tmp, bin)}
		if c.ldflags != "" {
			args = append(args, "-ldflags", c.ldflags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Dir = modDir
		cmd.Env = append(os.Environ(), c.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s (%s %s): %w\n%s", bin, pkg, version, err, tail(out, 30))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("store %s in cache: %w", c.name, err)
	}
	return dir, nil
}

func exitDetail(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
