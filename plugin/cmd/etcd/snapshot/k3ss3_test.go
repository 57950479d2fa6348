package snapshot

import (
	"testing"
	"time"
)

func TestParseK3sName(t *testing.T) {
	for _, tt := range []struct {
		name, node string
		unix       int64
		ok         bool
	}{
		{"etcd-snapshot-server-1-1795285773", "server-1", 1795285773, true},
		{"etcd-snapshot-server-1-1795285773.zip", "server-1", 1795285773, true},
		{"on-demand-ip-10-0-0-1-1795285773", "ip-10-0-0-1", 1795285773, true},
		{"nightly-server-1-1795285773", "", 1795285773, true},
		{"etcd-snapshot-server-1", "", 0, false},
		{"snapshot", "", 0, false},
		{"etcd-snapshot-server-1-42", "", 0, false},
	} {
		node, created, ok := parseK3sName(tt.name)
		if ok != tt.ok || node != tt.node || (ok && !created.Equal(time.Unix(tt.unix, 0))) {
			t.Errorf("%s: node %q, created %v, ok %v; want %q, %d, %v", tt.name, node, created, ok, tt.node, tt.unix, tt.ok)
		}
	}
}
