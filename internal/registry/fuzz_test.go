package registry

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// Keys and values come from a snapshot: any bytes. Decoding them returns
// an object or an error, never a panic.
func FuzzDecode(f *testing.F) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	enc, err := ParseEncryption([]byte(`{"kind":"EncryptionConfiguration","resources":[{"providers":[{"aescbc":{"keys":[{"name":"k","secret":"` + key + `"}]}},{"secretbox":{"keys":[{"name":"k","secret":"` + key + `"}]}},{"aesgcm":{"keys":[{"name":"k","secret":"` + key + `"}]}}]}]}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("/registry/configmaps/a/b", []byte("k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12\x00"))
	f.Add("/registry/example.com/widgets/a/w", []byte(`{"apiVersion":"example.com/v1","kind":"Widget"}`))
	f.Add("/registry/apiextensions.k8s.io/customresourcedefinitions/x", []byte(`{"apiVersion":"apiextensions.k8s.io/v1beta1","kind":"CustomResourceDefinition","spec":{"version":"v1"}}`))
	f.Add("/registry/secrets/a/b", []byte("k8s:enc:aescbc:v1:k:0123456789abcdef0123456789abcdef"))
	f.Add("/registry/secrets/a/b", []byte("k8s:enc:secretbox:v1:k:"+strings.Repeat("x", 60)))
	f.Add("/registry/secrets/a/b", []byte("k8s:enc:aesgcm:v1:k:"+strings.Repeat("x", 40)))
	d := NewDecoder()
	d.Encryption = enc
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		_, _ = ParseKey(key)
		obj, err := d.Decode(key, value)
		if err == nil && obj == nil {
			t.Fatal("no object and no error")
		}
	})
}

func FuzzParseEncryption(f *testing.F) {
	f.Add([]byte(`{"kind":"EncryptionConfiguration","resources":[{"providers":[{"aescbc":{"keys":[{"name":"k","secret":"AAAA"}]}},{"identity":{}}]}]}`))
	f.Add([]byte("kind: EncryptionConfiguration\nresources:\n- providers:\n  - secretbox:\n      keys:\n      - name: k\n        secret: AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseEncryption(data)
	})
}
