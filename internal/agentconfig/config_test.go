package agentconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{
			name: "defaults follow k3s",
			yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\n",
			check: func(t *testing.T, c *Config) {
				if c.Listen != DefaultListen || c.DataDir != DefaultDataDir || c.Etcd.Endpoint != DefaultEtcdEndpoint {
					t.Errorf("defaults: listen %q dataDir %q etcd %q", c.Listen, c.DataDir, c.Etcd.Endpoint)
				}
				if want := "/var/lib/rancher/k3s/server/tls/etcd/client.crt"; c.Etcd.Cert != want {
					t.Errorf("etcd cert = %q, want %q", c.Etcd.Cert, want)
				}
			},
		},
		{name: "mTLS is required", yaml: "nodeName: n1\n", wantErr: "tls.ca, tls.cert and tls.key are required"},
		{name: "unknown field", yaml: "nodeName: n1\nlisten: 127.0.0.1:1\nlistn: x\n", wantErr: `unknown field "listn"`},
		{name: "relative data dir", yaml: "dataDir: k3s\ntls: {ca: a, cert: b, key: c}\n", wantErr: "must be an absolute path"},
		{name: "bad listen", yaml: "listen: nowhere\ntls: {ca: a, cert: b, key: c}\n", wantErr: `listen "nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
