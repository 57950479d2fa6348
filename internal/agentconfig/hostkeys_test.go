package agentconfig

import (
	"fmt"
	"strings"
	"testing"
)

// A privileged, hostPID agent reaches the whole node through /proc/1/root
// and its disks through /dev: no configured path may lie there.
func TestParseRefusesKernelPaths(t *testing.T) {
	const base = "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\n"
	for yaml, want := range map[string]string{
		"restic: {paths: [/proc/1/root/etc]}":                     `restic.paths "/proc/1/root/etc" is under /proc`,
		"restic: {nodes: {n2: {paths: [/sys/../proc/1/root]}}}":   `restic.nodes.n2.paths "/sys/../proc/1/root" is under /proc`,
		"restic: {cacheDir: /dev/sda}":                            `restic.cacheDir "/dev/sda" is under /dev`,
		"wal: {sources: [{name: pg, spool: /proc/1/root/tmp}]}":   `wal.sources pg: spool "/proc/1/root/tmp" is under /proc`,
		"wal: {sources: [{name: pg, spool: /s, pgdata: /sys/x}]}": `wal.sources pg: pgdata "/sys/x" is under /sys`,
		"stateDir: /proc/self/root/var":                           `stateDir "/proc/self/root/var" is under /proc`,
	} {
		_, err := Parse([]byte(base+yaml+"\n"), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", yaml, err, want)
		}
	}
	if _, err := Parse([]byte(base+"restic: {paths: [/srv/proc, /var/lib/devices]}\n"), "c.yaml"); err != nil {
		t.Errorf("paths that only look alike: %v", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9650": true, "127.0.0.2:1": true, "[::1]:9650": true, "localhost:9650": true,
		"0.0.0.0:9650": false, ":9650": false, "10.0.0.5:9650": false, "[::]:9650": false, "node-1:9650": false,
	} {
		err := CheckLoopback("listen", addr)
		if (err == nil) != ok {
			t.Errorf("%s: err = %v, want ok %v", addr, err, ok)
		}
	}
}

// The digest covers what install wrote, not the defaults: a key added by
// hand changes it even when it names the default.
func TestHostKeysSHA256(t *testing.T) {
	const base = "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\n"
	parse := func(extra string) string {
		t.Helper()
		c, err := Parse([]byte(base+extra), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c.HostKeysSHA256()
	}
	plain := parse("")
	if parse("etcd: {schedule: '@daily'}\nrestic: {paths: [/srv]}\n") != plain {
		t.Errorf("keys that are not host keys change the digest")
	}
	for _, extra := range []string{
		"restore: {k3sBinary: /usr/local/bin/k3s}\n", "restore: {stopCommand: [systemctl, stop, k3s]}\n",
		"restic: {binary: /tmp/restic}\n", "restic: {cacheDir: /tmp}\n", "dataDir: /var/lib/rancher/k3s\n",
		"apiServer: 10.0.0.9:6443\n",
	} {
		if parse(extra) == plain {
			t.Errorf("%s: digest unchanged", strings.TrimSpace(extra))
		}
	}
	// A bucket source: where its key files are read from and where they
	// are sent are host keys; how often it runs is not.
	const source = "buckets: {sources: [{name: app, interval: %s, bucket: {url: 's3://app', endpoint: '%s', accessKeyFile: '%s', secretKeyFile: /etc/dr-agent/buckets/app/secretKey}}]}\n"
	installed := parse(fmt.Sprintf(source, "5m", "http://minio:9000", "/etc/dr-agent/buckets/app/accessKey"))
	if parse(fmt.Sprintf(source, "1m", "http://minio:9000", "/etc/dr-agent/buckets/app/accessKey")) != installed {
		t.Error("a bucket source's interval changes the digest")
	}
	for what, extra := range map[string]string{
		"the endpoint":       fmt.Sprintf(source, "5m", "http://elsewhere:9000", "/etc/dr-agent/buckets/app/accessKey"),
		"an access key file": fmt.Sprintf(source, "5m", "http://minio:9000", "/var/lib/rancher/k3s/server/token"),
	} {
		if parse(extra) == installed {
			t.Errorf("a bucket source's %s changed: digest unchanged", what)
		}
	}
}
