package miniotest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// EnvMinIO names a MinIO server binary; without it Start skips the test.
const EnvMinIO = "KDR_TEST_MINIO"

// Server is a running MinIO.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// RootAccessKey and RootSecretKey are its root (admin) credentials.
	RootAccessKey, RootSecretKey string
}

// Start runs a MinIO of the test's own and stops it when the test ends.
func Start(t testing.TB) Server {
	t.Helper()
	bin := os.Getenv(EnvMinIO)
	if bin == "" {
		t.Skipf("set %s to a MinIO server binary to run this test", EnvMinIO)
	}
	port, console := FreePort(t), FreePort(t)
	s := Server{
		Endpoint:      fmt.Sprintf("http://127.0.0.1:%d", port),
		RootAccessKey: "root-e2e", RootSecretKey: "root-secret-e2e-0123456789",
	}
	cmd := exec.Command(bin, "server", filepath.Join(t.TempDir(), "data"),
		"--address", fmt.Sprintf("127.0.0.1:%d", port), "--console-address", fmt.Sprintf("127.0.0.1:%d", console), "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.RootAccessKey, "MINIO_ROOT_PASSWORD="+s.RootSecretKey)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start MinIO %s: %v", bin, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		// cluster, not live: MinIO is live before it serves requests.
		resp, err := http.Get(s.Endpoint + "/minio/health/cluster")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MinIO at %s did not come up: %v", s.Endpoint, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreePort is a loopback TCP port free now, for a server a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
