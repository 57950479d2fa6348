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
	"sort"
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

// releaseDef is what the tests read from .goreleaser.yaml themselves, not
// through hack/dist.
type releaseDef struct {
	Builds []struct {
		ID     string   `json:"id"`
		Goos   []string `json:"goos"`
		Goarch []string `json:"goarch"`
	} `json:"builds"`
}

// kubectlDRPlatforms is the os/arch list of the kubectl-dr build in
// .goreleaser.yaml.
func kubectlDRPlatforms(t *testing.T, root string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d releaseDef
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	var plats []string
	for _, b := range d.Builds {
		if b.ID != "kubectl-dr" {
			continue
		}
		for _, o := range b.Goos {
			for _, a := range b.Goarch {
				plats = append(plats, o+"/"+a)
			}
		}
	}
	if len(plats) == 0 {
		t.Fatal(".goreleaser.yaml has no kubectl-dr build")
	}
	sort.Strings(plats)
	return plats
}

// testPlatforms are the os/arch pairs the tests build: this machine's and
// windows on its arch (the zip archive and the .exe), which cold takes a
// quarter of the time of all of them. KDR_DIST_ALL=1 builds every platform
// .goreleaser.yaml lists (nil).
func testPlatforms() map[string]bool {
	if os.Getenv("KDR_DIST_ALL") == "1" {
		return nil
	}
	return map[string]bool{runtime.GOOS + "/" + runtime.GOARCH: true, "windows/" + runtime.GOARCH: true}
}

func platformsFlag(set map[string]bool) []string {
	if set == nil {
		return nil
	}
	var ps []string
	for p := range set {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return []string{"-platforms", strings.Join(ps, ",")}
}

func runDist(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"run", "./hack/dist"}, args...), platformsFlag(testPlatforms())...)...)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/dist %v: %v\n%s", args, err, b)
	}
	return string(b)
}

func TestDistArchivesInstallWithKrew(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binaries and krew")
	}
	root, _ := filepath.Abs("../..")
	tmp := t.TempDir()
	out, mf := filepath.Join(tmp, "dist"), filepath.Join(tmp, "dr.yaml")
	const version = "v0.1.0-test.1"
	runDist(t, root, "-version", version, "-out", out, "-manifest", mf)
	data, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != version {
		t.Fatalf("manifest: version %s, want %s", m.Spec.Version, version)
	}
	// The manifest's platforms are the release definition's, no more, no
	// fewer.
	var got []string
	for _, p := range m.Spec.Platforms {
		got = append(got, p.Selector.MatchLabels["os"]+"/"+p.Selector.MatchLabels["arch"])
	}
	sort.Strings(got)
	var want []string
	for _, p := range kubectlDRPlatforms(t, root) {
		if set := testPlatforms(); set == nil || set[p] {
			want = append(want, p)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("krew manifest platforms %v; .goreleaser.yaml builds kubectl-dr for %v", got, want)
	}
	// checksums.txt lists every archive with its sha256, as goreleaser's does.
	sums := readSums(t, filepath.Join(out, "checksums.txt"))
	for _, p := range m.Spec.Platforms {
		if name := filepath.Base(p.URI); sums[name] != p.SHA256 {
			t.Errorf("checksums.txt: %s has %q, manifest says %s", name, sums[name], p.SHA256)
		}
	}
	// The release workflow's path: the manifest from the checksums file
	// alone is the same manifest.
	mf2 := filepath.Join(tmp, "dr-from-checksums.yaml")
	runDist(t, root, "-version", version, "-checksums", filepath.Join(out, "checksums.txt"), "-manifest", mf2)
	if data2, err := os.ReadFile(mf2); err != nil || string(data2) != string(data) {
		t.Errorf("manifest from checksums.txt differs from make dist's (%v):\n%s", err, data2)
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

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("%s: line %q", path, line)
		}
		sums[f[1]] = f[0]
	}
	return sums
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
