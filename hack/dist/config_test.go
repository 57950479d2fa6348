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
