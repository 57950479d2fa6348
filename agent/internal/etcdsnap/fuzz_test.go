package etcdsnap

import (
	"strings"
	"testing"
)

// Keys come from a snapshot file: any bytes. The preview groups them by
// resource and namespace and must never panic.
func FuzzParseKey(f *testing.F) {
	for _, k := range []string{"/registry/configmaps/default/cm", "/registry/namespaces/default", "/registry/apps/deployments/ns/d", "/registry/widgets.example.com/ns/w", "compact_rev_key", "/registry/", "/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		gr, ns, name := ParseKey(key)
		if !strings.HasPrefix(key, "/registry/") && gr != OtherKeys {
			t.Fatalf("ParseKey(%q) = %q, want %q for a key outside /registry/", key, gr, OtherKeys)
		}
		_, _ = ns, name
	})
}
