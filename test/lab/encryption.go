package lab

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// encryptionConfig is kube-apiserver's EncryptionConfiguration, laid out
// as k3s's secrets-encryption writes it: Secrets encrypted with aescbc,
// the file in <data-dir>/server/cred/encryption-config.json on every
// server (where the agents keep it beside each snapshot). It is made once
// per lab and copied to the servers that lack it.
func (l *Lab) encryptionConfig() (string, error) {
	path := filepath.Join(l.Dir, "pki", "kube", "encryption-config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return "", err
		}
		data = []byte(fmt.Sprintf(`{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"aescbckey","secret":%q}]}},{"identity":{}}]}]}`, base64.StdEncoding.EncodeToString(key)))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	for _, n := range l.EtcdNodes() {
		dst := filepath.Join(l.DataDir(n), "server", "cred", "encryption-config.json")
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			return "", err
		}
	}
	return path, nil
}
