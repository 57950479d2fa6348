package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func (l *Lab) apiServerURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.State.Ports["kube-apiserver"])
}

// upAPIServer starts kube-apiserver on the lab's etcd, with RBAC and a
// token file for the lab's admin, and writes the kubeconfig.
// StartK3sAPIServer starts the lab's kube-apiserver unless it runs: what
// a k3s server's start does besides etcd (k3s embeds its API server), for
// the k3s flavour's start command (lab start etcd-NODE). A cluster whose
// servers all went away gets its API server back with its first server.
func (l *Lab) StartK3sAPIServer(ctx context.Context) error {
	if _, ok := l.proc("kube-apiserver").pid(l.Dir); ok {
		return nil
	}
	if l.Bin == nil {
		l.Bin = &Binaries{KubeAPIServer: l.State.KubeAPIServerBin}
	}
	return l.upAPIServer(ctx)
}

func (l *Lab) upAPIServer(ctx context.Context) error {
	p := l.proc("kube-apiserver")
	kube := filepath.Join(l.Dir, "pki", "kube")
	if err := l.writeKubeconfig(); err != nil {
		return err
	}
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "kube-apiserver: already running (pid %d)\n", pid)
		if l.State.ClusterID != "" {
			return nil
		}
		client, err := l.apiHTTPClient()
		if err != nil {
			return err
		}
		return l.readClusterID(ctx, client)
	}
	port := l.State.Ports["kube-apiserver"]
	// It takes ~14 s to exit; a restart right after down may find the port
	// still held for a moment.
	for deadline := time.Now().Add(20 * time.Second); !portFree(port); {
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver: port %d is held by another process", port)
		}
		time.Sleep(250 * time.Millisecond)
	}
	tokens := filepath.Join(kube, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(l.State.KubeToken+",lab-admin,lab-admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	encryption, err := l.encryptionConfig()
	if err != nil {
		return err
	}
	first := l.EtcdNodes()[0]
	etcdTLS := filepath.Join(l.DataDir(first), "server", "tls", "etcd")
	var endpoints []string
	for _, n := range l.EtcdNodes() {
		endpoints = append(endpoints, l.etcdClientURL(n))
	}
	cmd := exec.Command(l.Bin.KubeAPIServer,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		// The only address is loopback, which the endpoint reconciler refuses.
		"--endpoint-reconciler-type", "none",
		"--etcd-servers", strings.Join(endpoints, ","),
		"--etcd-cafile", filepath.Join(etcdTLS, "server-ca.crt"),
		"--etcd-certfile", filepath.Join(etcdTLS, "client.crt"),
		"--etcd-keyfile", filepath.Join(etcdTLS, "client.key"),
		"--tls-cert-file", filepath.Join(kube, "apiserver.crt"),
		"--tls-private-key-file", filepath.Join(kube, "apiserver.key"),
		"--client-ca-file", filepath.Join(kube, "ca.crt"),
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(kube, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(kube, "sa.key"),
		"--service-cluster-ip-range", "10.43.0.0/16",
		"--allow-privileged",
		"--encryption-provider-config", encryption,
		"--cert-dir", filepath.Join(l.Dir, "kube-apiserver"),
		"--v", "0",
	)
	if _, err := p.start(cmd); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "kube-apiserver: started on %s\n", l.apiServerURL())
	client, err := l.apiHTTPClient()
	if err != nil {
		return err
	}
	if err := p.waitReady(ctx, l.Dir, 90*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.apiServerURL()+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+l.State.KubeToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	return l.readClusterID(ctx, client)
}

// readClusterID records the kube-system namespace's UID: the cluster id
// kubectl dr files the store under.
func (l *Lab) readClusterID(ctx context.Context, client *http.Client) error {
	uid, err := l.namespaceUID(ctx, client, l.apiServerURL(), "kube-system")
	if err != nil {
		return err
	}
	l.State.ClusterID = uid
	return l.saveState()
}

// namespaceUID reads a namespace's UID from the API server at url.
func (l *Lab) namespaceUID(ctx context.Context, client *http.Client, url, name string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/namespaces/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+l.State.KubeToken)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("read %s namespace: %w", name, err)
	}
	defer resp.Body.Close()
	var ns struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ns); err != nil || ns.Metadata.UID == "" {
		return "", fmt.Errorf("read %s namespace UID: %v (%s)", name, err, resp.Status)
	}
	return ns.Metadata.UID, nil
}

func (l *Lab) apiHTTPClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(filepath.Join(l.Dir, "pki", "kube", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

func (l *Lab) writeKubeconfig() error {
	return l.writeKubeconfigFor(filepath.Join(l.Dir, "kubeconfig"), l.apiServerURL())
}

// writeKubeconfigFor writes a kubeconfig for the lab's admin at path,
// reaching the API server at url.
func (l *Lab) writeKubeconfigFor(path, url string) error {
	caPEM, err := os.ReadFile(filepath.Join(l.Dir, "pki", "kube", "ca.crt"))
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: dr-lab
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: lab-admin
  user:
    token: %s
contexts:
- name: dr-lab
  context:
    cluster: dr-lab
    user: lab-admin
current-context: dr-lab
`, url, base64.StdEncoding.EncodeToString(caPEM), l.State.KubeToken)
	return os.WriteFile(path, []byte(cfg), 0o600)
}
