package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kubectl-dr/kubectl-dr/agent/server"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

// waitHealth asks url until it answers 200 with every one of want.
func waitHealth(t *testing.T, url string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := 0, ""
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, body = resp.StatusCode, string(b)
		}
		ok := code == http.StatusOK
		for _, w := range want {
			ok = ok && strings.Contains(body, w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d %q (%v), want 200 with %q", url, code, body, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The agent takes a changed configuration file without restarting the
// process, and keeps the running one when the new file does not load.
func TestRunReloadsChangedConfig(t *testing.T) {
	c := writeCerts(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf(`nodeName: worker-1
listen: %s
metricsAddress: %s
dataDir: %s
stateDir: %s
clusterID: test-cluster
store: {url: "file://%s"}
wal: {sources: [{name: pg, spool: %s}]}
tls: {ca: %s, cert: %s, key: %s}
restic: {binary: /nonexistent/restic}
`, listen, metrics, dir, filepath.Join(dir, "state"), filepath.Join(dir, "store"), spool, c.server.CA, c.server.Cert, c.server.Key)
	path := filepath.Join(dir, "config.yaml")
	write := func(content string) string {
		t.Helper()
		// As the kubelet does: a new file renamed over the old one.
		if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(content))
		return hex.EncodeToString(s[:])
	}
	first := write(base)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, path, server.RunOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(listen, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	agent := agentv1.NewAgentServiceClient(cc)
	waitInfo := func(what string, ok func(*agentv1.InfoResponse) bool) *agentv1.InfoResponse {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := agent.Info(ictx, &agentv1.InfoRequest{})
			icancel()
			if err == nil && ok(info) {
				return info
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last answer %v, err %v", what, info, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitInfo("agent serving the first config", func(i *agentv1.InfoResponse) bool { return i.ConfigSha256 == first })

	second := write(strings.Replace(base, "clusterID: test-cluster", "clusterID: other-cluster", 1))
	info := waitInfo("agent serving the changed config", func(i *agentv1.InfoResponse) bool { return i.ConfigSha256 == second })
	if info.ClusterId != "other-cluster" {
		t.Errorf("cluster id after reload = %q, want other-cluster", info.ClusterId)
	}
	// The new configuration's shipper ships to the new cluster's place,
	// and its health endpoint lists every check.
	segment := filepath.Join(spool, "000000010000000000000001")
	if err := os.WriteFile(segment, walobjtest.Segment(filepath.Base(segment), 7299, 1<<20, 0), 0o600); err != nil {
		t.Fatal(err)
	}
	// The shipper removes a segment from the spool once it is verified in
	// the store.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(segment); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment still in the spool after the reload")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "other-cluster", "wal", "pg")); err != nil {
		t.Errorf("nothing shipped under the new cluster id: %v", err)
	}
	waitHealth(t, "http://"+metrics+"/healthz", "[+] grpc: accepting connections on "+listen, "[+] store: file://", "[+] wal shipper pg: 0 segments waiting")

	write(base + "etcd: {schedule: \"every tuesday\"}\n")
	info = waitInfo("agent reporting the bad config", func(i *agentv1.InfoResponse) bool { return i.ConfigError != "" })
	if info.ConfigSha256 != second || !strings.Contains(info.ConfigError, "etcd.schedule") {
		t.Errorf("after a bad file: sha %s (want the previous %s), error %q (want one naming etcd.schedule)", info.ConfigSha256[:12], second[:12], info.ConfigError)
	}
	third := write(base + "etcd: {schedule: \"*/5 * * * *\"}\n")
	info = waitInfo("agent serving the fixed config", func(i *agentv1.InfoResponse) bool { return i.ConfigSha256 == third })
	if info.ConfigError != "" {
		t.Errorf("config error still reported after a good file: %q", info.ConfigError)
	}
}
