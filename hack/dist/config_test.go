package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigReadsTheReleaseDefinition(t *testing.T) {
	c, err := loadConfig("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := c.archive("kubectl-dr")
	if !ok {
		t.Fatal("no kubectl-dr archive")
	}
	d := newTmplData(c.ProjectName, "v1.2.3", "")
	d.Os, d.Arch = "linux", "arm64"
	if name, err := render(a.NameTemplate, d); err != nil || name != "kubectl-dr_v1.2.3_linux_arm64" {
		t.Errorf("archive name %q (%v), want kubectl-dr_v1.2.3_linux_arm64", name, err)
	}
}

// A key hack/dist does not implement (here wrap_in_directory, which would
// change every archive's layout) is refused, naming the key, rather than
// ignored.
func TestLoadConfigRefusesWhatItDoesNotImplement(t *testing.T) {
	data, err := os.ReadFile("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(data), "    formats: [tar.gz]\n", "    formats: [tar.gz]\n    wrap_in_directory: true\n", 1)
	path := filepath.Join(t.TempDir(), "goreleaser.yaml")
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig(path)
	if err == nil || !strings.Contains(err.Error(), `unknown field "wrap_in_directory"`) || !strings.Contains(err.Error(), "teach it") {
		t.Fatalf("loadConfig with wrap_in_directory: %v; want an error naming the key", err)
	}
}

// Every platform the definition lists becomes an archive, and -platforms
// keeps only the ones named: what the tests build is a subset of the
// release, never a different list.
func TestArchivePlatformsFollowTheDefinitionAndTheFilter(t *testing.T) {
	c, err := loadConfig("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.archive("kubectl-dr")
	files := func(o options) string {
		o.version, o.config = "v1.2.3", "../../.goreleaser.yaml"
		ps, err := archivePlatforms(c, a, o)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.file)
		}
		return strings.Join(names, " ")
	}
	all := "kubectl-dr_v1.2.3_linux_amd64.tar.gz kubectl-dr_v1.2.3_linux_arm64.tar.gz " +
		"kubectl-dr_v1.2.3_darwin_amd64.tar.gz kubectl-dr_v1.2.3_darwin_arm64.tar.gz " +
		"kubectl-dr_v1.2.3_windows_amd64.zip kubectl-dr_v1.2.3_windows_arm64.zip"
	if got := files(options{}); got != all {
		t.Errorf("all platforms: %s\nwant %s", got, all)
	}
	some := options{platforms: map[string]bool{"linux/amd64": true, "windows/amd64": true}}
	if got, want := files(some), "kubectl-dr_v1.2.3_linux_amd64.tar.gz kubectl-dr_v1.2.3_windows_amd64.zip"; got != want {
		t.Errorf("-platforms linux/amd64,windows/amd64: %s, want %s", got, want)
	}
}
