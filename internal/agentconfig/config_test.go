package agentconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{
			name: "bucket sources default to continuous, 90 days, 8 at once",
			yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\nbuckets: {sources: [{name: media, bucket: {url: s3://media}}]}\n",
			check: func(t *testing.T, c *Config) {
				b := c.Buckets.Sources[0]
				if b.Mode != ModeContinuous || b.RetentionDays != 90 || b.Concurrency != 8 || b.PassInterval() != 30*time.Second || b.RPOTarget != TargetOff {
					t.Errorf("bucket source defaults: %+v", b)
				}
			},
		},
		{name: "bucket source mode", yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\nbuckets: {sources: [{name: media, bucket: {url: s3://media}, mode: hourly}]}\n", wantErr: "mode: want continuous or a cron expression"},
		{name: "bucket source without a bucket", yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\nbuckets: {sources: [{name: media}]}\n", wantErr: "bucket.url is required"},
		{name: "unknown field", yaml: "nodeName: n1\nlisten: 127.0.0.1:1\nlistn: x\n", wantErr: `unknown field "listn"`},
		{name: "relative data dir", yaml: "dataDir: k3s\ntls: {ca: a, cert: b, key: c}\n", wantErr: "must be an absolute path"},
		{
			name: "rpo targets default to twice the schedule, off without one, 5m for WAL",
			yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\nwal: {sources: [{name: pg, spool: /s}]}\n",
			check: func(t *testing.T, c *Config) {
				if c.Etcd.RPOTarget != "12h0m0s" || c.Restic.RPOTarget != "off" || c.WAL.Sources[0].RPOTarget != "5m0s" {
					t.Errorf("targets etcd %q restic %q wal %q, want 12h0m0s, off, 5m0s", c.Etcd.RPOTarget, c.Restic.RPOTarget, c.WAL.Sources[0].RPOTarget)
				}
			},
		},
		{
			name: "weekday schedule: the weekend is the longest interval",
			yaml: "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\nrestic: {schedule: \"30 2 * * 1-5\"}\netcd: {schedule: \"off\", rpoTarget: 1h}\n",
			check: func(t *testing.T, c *Config) {
				if c.Restic.RPOTarget != "144h0m0s" || Target(c.Etcd.RPOTarget) != time.Hour {
					t.Errorf("restic target %q (want 144h0m0s: twice Friday to Monday), etcd %q", c.Restic.RPOTarget, c.Etcd.RPOTarget)
				}
			},
		},
		{name: "rpo target not a duration", yaml: "tls: {ca: a, cert: b, key: c}\netcd: {rpoTarget: soon}\n", wantErr: `etcd.rpoTarget "soon": want a positive duration such as 12h or 30m, or off`},
		{name: "rpo target below the schedule", yaml: "tls: {ca: a, cert: b, key: c}\netcd: {rpoTarget: 1h}\n", wantErr: "etcd.rpoTarget 1h0m0s is shorter than etcd.schedule's interval (6h0m0s): it would be missed before every run"},
		{name: "wal rpo target negative", yaml: "tls: {ca: a, cert: b, key: c}\nwal: {sources: [{name: pg, spool: /s, rpoTarget: -5m}]}\n", wantErr: `wal.sources pg: rpoTarget "-5m": want a positive duration`},
		{name: "bare off", yaml: "tls: {ca: a, cert: b, key: c}\netcd: {rpoTarget: off}\n", wantErr: `etcd.rpoTarget is false: write "off" in quotes`},
		{name: "api server without a port", yaml: "apiServer: 127.0.0.1\ntls: {ca: a, cert: b, key: c}\n", wantErr: `apiServer "127.0.0.1": want HOST:PORT`},
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
