package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kubectl-dr/kubectl-dr/agent/server"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
)

// hostKeysConfig is a configuration the agent serves, listening on listen.
func hostKeysConfig(t *testing.T, listen string) (string, certs) {
	t.Helper()
	c := writeCerts(t)
	dir := t.TempDir()
	return fmt.Sprintf(`nodeName: worker-1
listen: %s
metricsAddress: "off"
dataDir: %s
stateDir: %s
clusterID: test-cluster
store: {url: "file://%s"}
tls: {ca: %s, cert: %s, key: %s}
restic: {binary: /nonexistent/restic}
`, listen, dir, filepath.Join(dir, "state"), filepath.Join(dir, "store"), c.server.CA, c.server.Cert, c.server.Key), c
}

func writeConfig(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256([]byte(content))
	return hex.EncodeToString(s[:])
}

func hostDigest(t *testing.T, content string) string {
	t.Helper()
	cfg, err := agentconfig.Parse([]byte(content), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.HostKeysSHA256()
}

// An agent started with install's digest of the host keys refuses a
// configuration whose stop command someone put into the ConfigMap: at
// start, and on a reload, where it keeps running the previous file and
// says why in Info.
func TestRunRefusesHostKeysInstallDidNotWrite(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base, c := hostKeysConfig(t, listen)
	edited := base + "restore: {stopCommand: [sh, -c, 'id > /tmp/pwned']}\n"
	opts := server.RunOptions{HostKeysSHA256: hostDigest(t, base)}
	path := filepath.Join(t.TempDir(), "config.yaml")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	writeConfig(t, path, edited)
	// Bounded: an agent that took the file would serve until ctx ends.
	startCtx, startCancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := server.Run(startCtx, path, opts, log)
	startCancel()
	if err == nil || !strings.Contains(err.Error(), "restore.stopCommand") || !strings.Contains(err.Error(), "kubectl dr install") {
		t.Fatalf("start with an edited stop command: err = %v, want a refusal naming restore.stopCommand and install", err)
	}

	first := writeConfig(t, path, base)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, path, opts, log) }()
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
	waitInfo("agent serving install's config", func(i *agentv1.InfoResponse) bool { return i.ConfigSha256 == first })

	writeConfig(t, path, edited)
	info := waitInfo("agent reporting the edited config", func(i *agentv1.InfoResponse) bool { return i.ConfigError != "" })
	if info.ConfigSha256 != first || !strings.Contains(info.ConfigError, "host keys changed outside install") {
		t.Errorf("after the edit: serving %s (want install's %s), error %q", info.ConfigSha256[:12], first[:12], info.ConfigError)
	}

	// Keys that are not host keys still reload.
	second := writeConfig(t, path, base+"etcd: {scheduleName: nightly}\n")
	waitInfo("agent serving a changed schedule name", func(i *agentv1.InfoResponse) bool { return i.ConfigSha256 == second && i.ConfigError == "" })
}

// The agent serves only loopback unless its command line allows more.
func TestRunRefusesRemoteListen(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct{ listen, metrics, want string }{
		{listen: fmt.Sprintf("0.0.0.0:%d", freePort(t)), metrics: "off", want: `listen "0.0.0.0:`},
		{listen: fmt.Sprintf(":%d", freePort(t)), metrics: "off", want: `listen ":`},
		{listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), metrics: fmt.Sprintf("0.0.0.0:%d", freePort(t)), want: `metricsAddress "0.0.0.0:`},
	} {
		content, _ := hostKeysConfig(t, tc.listen)
		content = strings.Replace(content, `metricsAddress: "off"`, fmt.Sprintf("metricsAddress: %q", tc.metrics), 1)
		path := filepath.Join(t.TempDir(), "config.yaml")
		writeConfig(t, path, content)
		startCtx, startCancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := server.Run(startCtx, path, server.RunOptions{}, log)
		startCancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--allow-remote-listen") {
			t.Errorf("listen %s, metrics %s: err = %v, want a refusal with %q naming --allow-remote-listen", tc.listen, tc.metrics, err, tc.want)
		}
	}

	// Allowed: the agent serves on every interface.
	port := freePort(t)
	content, c := hostKeysConfig(t, fmt.Sprintf("0.0.0.0:%d", port))
	path := filepath.Join(t.TempDir(), "config.yaml")
	sum := writeConfig(t, path, content)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, path, server.RunOptions{AllowRemoteListen: true}, log) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := agentv1.NewAgentServiceClient(cc).Info(ictx, &agentv1.InfoRequest{})
		icancel()
		if err == nil && info.ConfigSha256 == sum {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent with --allow-remote-listen on 0.0.0.0: %v", err)
		}
	}
}
