package minioadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/minioadmin/miniotest"
)

// EnvSeaweedFS names a SeaweedFS binary (weed; the lab's build) for the
// test that another S3 store is ErrNotMinIO; without it, it is skipped.
const EnvSeaweedFS = "KDR_TEST_SEAWEEDFS"

// A real SeaweedFS, with an identity that has every right there, is no
// MinIO admin: Ensure's first call (a GET) is ErrNotMinIO, not
// ErrNotAdmin, and it writes nothing.
func TestSeaweedFSIsNotMinIO(t *testing.T) {
	bin := os.Getenv(EnvSeaweedFS)
	if bin == "" {
		t.Skipf("set %s to a SeaweedFS binary (weed) to run this test", EnvSeaweedFS)
	}
	dir := t.TempDir()
	conf, err := json.Marshal(map[string]any{"identities": []map[string]any{{
		"name":        "admin",
		"credentials": []map[string]string{{"accessKey": "weed-admin", "secretKey": "weed-admin-secret-0123"}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"mini", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0", "-s3.config=" + filepath.Join(dir, "s3.json")}
	var s3 int
	for _, p := range []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc"} {
		port := miniotest.FreePort(t)
		if p == "s3.port" {
			s3 = port
		}
		args = append(args, fmt.Sprintf("-%s=%d", p, port))
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	c, err := New(Config{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", s3), AccessKey: "weed-admin", SecretKey: "weed-admin-secret-0123"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c.http.Transport = rec
	u := NodeUser{AccessKey: "dr-node-c1", Policy: "dr-node-c1", Document: []byte(`{"Version":"2012-10-17","Statement":[]}`)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rec.calls = nil
		_, err = c.Ensure(ctx, u, "secret-0123456789", false)
		cancel()
		if errors.Is(err, ErrNotMinIO) || errors.Is(err, ErrNotAdmin) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // SeaweedFS starting
	}
	if !errors.Is(err, ErrNotMinIO) || errors.Is(err, ErrNotAdmin) {
		t.Fatalf("Ensure on SeaweedFS: %v; want ErrNotMinIO", err)
	}
	if len(rec.calls) != 1 || !strings.HasPrefix(rec.calls[0], "GET user-info ") {
		t.Errorf("calls to SeaweedFS: %q; want the one GET", rec.calls)
	}
	t.Logf("SeaweedFS: %v", err)
}
