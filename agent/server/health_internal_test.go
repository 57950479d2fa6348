package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

// get answers path on the health server: status code and body.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// waitAnswer asks path until it answers code with a body containing every
// one of want.
func waitAnswer(t *testing.T, base, path string, code int, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, body := get(t, base, path)
		ok := got == code
		for _, w := range want {
			ok = ok && strings.Contains(body, w)
		}
		if ok {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d:\n%s\nwant %d with %q", path, got, body, code, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// /healthz names a shipper that ships nothing while segments wait and a
// store that keeps failing its check; liveness and readiness, which only
// a restart or the gRPC server can fix, stay up. When the store is back
// the backlog drains and /healthz is ok again; a gRPC server that stopped
// fails liveness.
func TestHealthReportsAStuckShipperAndStoreOnAFileStoreThatIsAFile(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	// The store is down: its directory is a file, every write fails.
	if err := os.WriteFile(root, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := &agentconfig.Config{
		NodeName: "worker-1", DataDir: dir, StateDir: filepath.Join(dir, "state"), ClusterID: "c1",
		Store:  objstore.Config{URL: "file://" + root},
		Restic: agentconfig.Restic{Binary: "/nonexistent/restic"},
		WAL:    agentconfig.WAL{Sources: []agentconfig.WALSource{{Name: "pg", Spool: spool}}},
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := s.health
	h.storeEvery, h.storeFailAfter, h.walStuckAfter, h.walStatusEvery = 50*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 50*time.Millisecond

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.grpcLis = watchAccepts(lis)
	gs := s.GRPCServer()
	go gs.Serve(s.grpcLis)
	defer gs.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { s.runShippers(ctx); done <- struct{}{} }()
	go func() { s.checkStore(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	web := httptest.NewServer(s.healthMux())
	defer web.Close()

	for i := 1; i <= 3; i++ {
		if err := os.WriteFile(filepath.Join(spool, fmt.Sprintf("0000000100000000000000%02X", i)), walobjtest.Segment(fmt.Sprintf("0000000100000000000000%02X", i), 7299, 1<<20, 0), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	grpcOK := "[+] grpc: accepting connections on " + lis.Addr().String()
	body := waitAnswer(t, web.URL, "/healthz", http.StatusServiceUnavailable,
		grpcOK,
		"[-] wal shipper pg: no progress for ", " with 3 segments waiting; last error: ",
		"[-] store: failing for ", "store file://"+filepath.Join(root, "c1")+" is not writable")
	t.Logf("/healthz with the store down:\n%s", body)
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := get(t, web.URL, path); code != http.StatusOK || body != grpcOK+"\n" {
			t.Errorf("%s with the store down answered %d %q, want 200 %q", path, code, body, grpcOK)
		}
	}

	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, web.URL, "/healthz", http.StatusOK, grpcOK, "[+] wal shipper pg: 0 segments waiting", "[+] store: file://")
	a, err := walobj.ListArchived(ctx, s.store, "pg")
	if err != nil || a.Files != 3 {
		t.Errorf("archive after the store came back: %+v, %v; want the 3 segments", a, err)
	}

	gs.Stop()
	waitAnswer(t, web.URL, "/livez", http.StatusServiceUnavailable, "[-] grpc: not accepting connections on "+lis.Addr().String())
}
