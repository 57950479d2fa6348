package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image tags the lab imports into containerd.
const (
	AgentImage = "docker.io/kubectl-dr/dr-agent:lab"
	PauseImage = "docker.io/kubectl-dr/pause:lab"
)

// ImageFile is one file of an image: where it comes from on this machine
// and where it goes in the image.
type ImageFile struct {
	Src, Dst string
	Mode     int64
}

// ImageSpec describes a single-layer image built without a registry or a
// Docker daemon.
type ImageSpec struct {
	Tag        string
	Files      []ImageFile
	Symlinks   map[string]string // link -> target
	Entrypoint []string
	Env        []string
	User       string
}

// WriteImage builds the image and writes it as a docker-archive tarball
// (what `ctr images import` and `docker load` take).
func WriteImage(spec ImageSpec, out string) error {
	layerTar, err := layerBytes(spec)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: spec.Entrypoint, Env: spec.Env, User: spec.User}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.NewTag(spec.Tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", spec.Tag, err)
	}
	if err := tarball.WriteToFile(out+".part", ref, img); err != nil {
		return fmt.Errorf("write image %s: %w", out, err)
	}
	return os.Rename(out+".part", out)
}

func layerBytes(spec ImageSpec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDir func(string) error
	addDir = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := addDir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, f := range spec.Files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("image file: %w", err)
		}
		if err := addDir(path.Dir(f.Dst)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Dst[1:], Typeflag: tar.TypeReg, Mode: f.Mode, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(spec.Symlinks))
	for l := range spec.Symlinks {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		if err := addDir(path.Dir(l)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: l[1:], Typeflag: tar.TypeSymlink, Linkname: spec.Symlinks[l], Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	// /tmp for restic's cache and temporary files.
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuildAgentImage builds the static dr-agent and restic and writes the agent
// image to out, tagged tag (default AgentImage).
func BuildAgentImage(ctx context.Context, root, out, tag string, log io.Writer) error {
	c, ok := componentNamed("restic")
	if !ok {
		return fmt.Errorf("no restic component")
	}
	cache := CacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	dir, err := c.ensure(ctx, root, cache, log)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dr-agent-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	args := []string{"build", "-o", tmp + "/"}
	if v := os.Getenv("DR_VERSION"); v != "" {
		// make image: the version the plugin's default image names.
		args = append(args, "-ldflags", "-X github.com/kubectl-dr/kubectl-dr/internal/buildinfo.version="+v)
	}
	build := exec.CommandContext(ctx, "go", append(args, "./cmd/dr-agent")...)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build static dr-agent: %w\n%s", err, b)
	}
	spec := AgentImageSpec(filepath.Join(tmp, "dr-agent"), filepath.Join(dir, "restic"))
	if tag != "" {
		spec.Tag = tag
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := WriteImage(spec, out); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s (%s): docker load -i %s, or ctr images import %s\n", out, spec.Tag, out, out)
	return nil
}

func componentNamed(name string) (component, bool) {
	for _, c := range components {
		if c.name == name {
			return c, true
		}
	}
	return component{}, false
}
