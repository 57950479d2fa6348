package pgbackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The version names the directory whose postgres runs; it comes from the
// store (a record, a restored PG_VERSION), so a crafted one must not lead
// anywhere else, even to a postgres that exists there.
func TestServerBinaryRefusesAVersionThatIsAPath(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "bin", "postgres")
	if err := os.MkdirAll(filepath.Dir(evil), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evil, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	version := "../../.." + dir
	bin, err := ServerBinary(version)
	if err == nil || !strings.Contains(err.Error(), "is not a version") {
		t.Fatalf("ServerBinary(%q) = %q, %v; want a refusal", version, bin, err)
	}
	for _, v := range []string{"15", "9.6"} {
		if _, err := ServerBinary(v); err != nil && strings.Contains(err.Error(), "is not a version") {
			t.Errorf("ServerBinary(%q): %v", v, err)
		}
	}
}
