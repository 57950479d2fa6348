package dist

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestDistMatchesGoreleaser builds a snapshot release with goreleaser (the
// version hack/tools/goreleaser pins, no images, SBOMs or publishing) and
// make dist's archives for the same tag, and compares them: the same
// archive names, and in each the same members with the same modes and, but
// for the binaries, the same bytes.
func TestDistMatchesGoreleaser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds goreleaser and a snapshot release")
	}
	root, _ := filepath.Abs("../..")
	tmp := t.TempDir()
	tool := exec.Command("hack/release/tool.sh", "goreleaser")
	tool.Dir = root
	tool.Stderr = os.Stderr
	b, err := tool.Output()
	if err != nil {
		t.Fatalf("build goreleaser: %v", err)
	}
	goreleaser := strings.TrimSpace(string(b))

	// The same definition, writing into tmp.
	def, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	grOut := filepath.Join(tmp, "goreleaser")
	cfg := strings.Replace(string(def), "\ndist: _output/goreleaser\n", "\ndist: "+grOut+"\n", 1)
	if cfg == string(def) {
		t.Fatal(".goreleaser.yaml has no `dist: _output/goreleaser` line to redirect")
	}
	if set := testPlatforms(); set != nil {
		cfg = onlyPlatforms(t, cfg, set)
	}
	cfgPath := filepath.Join(tmp, "goreleaser.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := exec.Command(goreleaser, "release", "--snapshot", "--clean", "--skip=docker,sbom,publish", "--config", cfgPath)
	rel.Dir = root
	if b, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("goreleaser release --snapshot: %v\n%s", err, b)
	}
	var meta struct {
		Tag string `json:"tag"`
	}
	if b, err := os.ReadFile(filepath.Join(grOut, "metadata.json")); err != nil || json.Unmarshal(b, &meta) != nil || meta.Tag == "" {
		t.Fatalf("goreleaser metadata.json: %v %s", err, b)
	}

	distOut := filepath.Join(tmp, "dist")
	runDist(t, root, "-version", meta.Tag, "-out", distOut, "-manifest", filepath.Join(tmp, "dr.yaml"))

	grSums, distSums := readSums(t, filepath.Join(grOut, "checksums.txt")), readSums(t, filepath.Join(distOut, "checksums.txt"))
	if g, d := keys(grSums), keys(distSums); g != d {
		t.Fatalf("archives differ:\n goreleaser: %s\n make dist:  %s", g, d)
	}
	for name := range grSums {
		g, d := members(t, filepath.Join(grOut, name)), members(t, filepath.Join(distOut, name))
		if g != d {
			t.Errorf("%s differs:\n goreleaser: %s\n make dist:  %s", name, g, d)
		}
	}
}

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// members describes an archive's members, sorted by name: name, mode and,
// but for the binaries (whose build stamps differ), a hash of the bytes.
func members(t *testing.T, path string) string {
	t.Helper()
	var out []string
	add := func(name string, mode os.FileMode, r io.Reader) {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))[:12]
		if base := strings.TrimSuffix(name, ".exe"); base == "kubectl-dr" || base == "dr-agent" {
			sum = "(binary)"
		}
		out = append(out, fmt.Sprintf("%s %o %s", name, mode.Perm(), sum))
	}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			add(f.Name, f.Mode(), rc)
			rc.Close()
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			add(h.Name, os.FileMode(h.Mode), tr)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// onlyPlatforms rewrites a goreleaser definition so that each build lists
// only the goos and goarch of set (testPlatforms' pairs share one arch, so
// the product is exactly set's pairs that the build had).
func onlyPlatforms(t *testing.T, cfg string, set map[string]bool) string {
	t.Helper()
	var def map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &def); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	keep := func(list any, part int) []any {
		var out []any
		for _, v := range list.([]any) {
			for p := range set {
				if strings.Split(p, "/")[part] == v.(string) {
					out = append(out, v)
					break
				}
			}
		}
		return out
	}
	for _, b := range def["builds"].([]any) {
		b := b.(map[string]any)
		b["goos"], b["goarch"] = keep(b["goos"], 0), keep(b["goarch"], 1)
	}
	out, err := yaml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
