package dist

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type manifest struct {
	Spec struct {
		Version   string `json:"version"`
		Platforms []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

func TestDistArchivesInstallWithKrew(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six binaries and krew")
	}
	root, _ := filepath.Abs("../..")
	tmp := t.TempDir()
	out, mf := filepath.Join(tmp, "dist"), filepath.Join(tmp, "dr.yaml")
	const version = "v0.1.0-test.1"
	cmd := exec.Command("go", "run", "./hack/dist", "-version", version, "-out", out, "-manifest", mf)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/dist: %v\n%s", err, b)
	}
	data, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != version || len(m.Spec.Platforms) != 6 {
		t.Fatalf("manifest: version %s, %d platforms; want %s and 6", m.Spec.Version, len(m.Spec.Platforms), version)
	}
	var local string
	for _, p := range m.Spec.Platforms {
		archive := filepath.Join(out, filepath.Base(p.URI))
		if got := sha256File(t, archive); got != p.SHA256 {
			t.Errorf("%s: sha256 %s, manifest says %s", archive, got, p.SHA256)
		}
		if !strings.Contains(p.URI, "/"+version+"/") {
			t.Errorf("uri %s does not name the version", p.URI)
		}
		l := p.Selector.MatchLabels
		if l["os"] == runtime.GOOS && l["arch"] == runtime.GOARCH {
			local = archive
		}
	}
	if local == "" {
		t.Fatalf("no archive for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if names := tarNames(t, local); strings.Join(names, ",") != "kubectl-dr,kubectl_complete-dr,LICENSE" {
		t.Errorf("%s holds %v, want kubectl-dr, kubectl_complete-dr and LICENSE", local, names)
	}

	krew := filepath.Join(tmp, "krew")
	build := exec.Command("go", "build", "-o", krew, "sigs.k8s.io/krew/cmd/krew")
	build.Dir = filepath.Join(root, "hack", "tools", "krew")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build krew v0.4.4: %v\n%s", err, b)
	}
	krewRoot := filepath.Join(tmp, "krew-root")
	install := exec.Command(krew, "install", "--manifest="+mf, "--archive="+local)
	install.Env = append(os.Environ(), "KREW_ROOT="+krewRoot, "HOME="+tmp, "KREW_NO_UPGRADE_CHECK=1")
	if b, err := install.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, b)
	}
	v, err := exec.Command(filepath.Join(krewRoot, "bin", "kubectl-dr"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), version) {
		t.Fatalf("installed kubectl-dr version: %v\n%s", err, v)
	}
	// Completion through the script shipped beside the plugin (krew links
	// only the plugin into its bin; users link the script), as kubectl
	// runs it.
	complete := exec.Command(filepath.Join(krewRoot, "store", "dr", version, "kubectl_complete-dr"), "backup", "")
	complete.Env = append(os.Environ(), "PATH="+filepath.Join(krewRoot, "bin")+":"+os.Getenv("PATH"))
	c, err := complete.CombinedOutput()
	if err != nil || !strings.Contains(string(c), "create") || !strings.Contains(string(c), "verify") {
		t.Errorf("kubectl_complete-dr backup: %v\n%s", err, c)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
