package registry

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
	"sigs.k8s.io/yaml"
)

// EncryptedPrefix starts every value kube-apiserver wrapped with
// encryption at rest: k8s:enc:<provider>:v1:<key name>:<data>.
const EncryptedPrefix = "k8s:enc:"

// ErrEncrypted means a value is encrypted at rest and no key for it was
// given.
var ErrEncrypted = errors.New("encrypted at rest")

// Encryption holds the keys of an EncryptionConfiguration
// (apiserver.config.k8s.io/v1; k3s keeps it in
// <data-dir>/server/cred/encryption-config.json).
type Encryption struct {
	// keys by "<provider>:<key name>", each the key's raw bytes.
	keys map[string][]byte
}

type encryptionConfig struct {
	Kind      string `json:"kind"`
	Resources []struct {
		Providers []map[string]struct {
			Keys []struct {
				Name   string `json:"name"`
				Secret string `json:"secret"`
			} `json:"keys"`
		} `json:"providers"`
	} `json:"resources"`
}

// ParseEncryption reads an EncryptionConfiguration (JSON or YAML).
func ParseEncryption(data []byte) (*Encryption, error) {
	var cfg encryptionConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("read encryption config: %w", err)
	}
	if cfg.Kind != "EncryptionConfiguration" {
		return nil, fmt.Errorf("read encryption config: kind %q, want EncryptionConfiguration", cfg.Kind)
	}
	e := &Encryption{keys: map[string][]byte{}}
	for _, r := range cfg.Resources {
		for _, p := range r.Providers {
			for name, prov := range p {
				for _, k := range prov.Keys {
					secret, err := base64.StdEncoding.DecodeString(k.Secret)
					if err != nil {
						return nil, fmt.Errorf("read encryption config: %s key %q: %w", name, k.Name, err)
					}
					e.keys[name+":"+k.Name] = secret
				}
			}
		}
	}
	return e, nil
}

// Encrypted reports whether a stored value is wrapped by encryption at
// rest, and by which provider and key.
func Encrypted(value []byte) (provider, key string, ok bool) {
	provider, key, _, ok = split(value)
	return provider, key, ok
}

// split cuts k8s:enc:<provider>:<version>:<key name>:<data>.
func split(value []byte) (provider, key string, data []byte, ok bool) {
	rest, found := bytes.CutPrefix(value, []byte(EncryptedPrefix))
	if !found {
		return "", "", nil, false
	}
	parts := bytes.SplitN(rest, []byte(":"), 4)
	if len(parts) < 4 || string(parts[1]) != "v1" && !(string(parts[0]) == "kms" && string(parts[1]) == "v2") {
		return "", "", nil, false
	}
	return string(parts[0]), string(parts[2]), parts[3], true
}

// Decrypt undoes encryption at rest of the value stored under etcdKey
// (AES-GCM authenticates the key). Values not encrypted come back as they
// are (the identity provider). e may be nil: encrypted values then fail
// with ErrEncrypted.
func (e *Encryption) Decrypt(etcdKey string, value []byte) ([]byte, error) {
	provider, name, data, ok := split(value)
	if !ok {
		return value, nil
	}
	if provider == "kms" {
		return nil, fmt.Errorf("%w by KMS plugin %q: only the KMS plugin can decrypt it, and kubectl dr does not call one", ErrEncrypted, name)
	}
	if e == nil {
		return nil, fmt.Errorf("%w (%s key %q) and no encryption config was given", ErrEncrypted, provider, name)
	}
	key, ok := e.keys[provider+":"+name]
	if !ok {
		return nil, fmt.Errorf("%w with %s key %q, which the encryption config does not hold (was the key rotated after the snapshot?)", ErrEncrypted, provider, name)
	}
	var out []byte
	var err error
	switch provider {
	case "aescbc":
		out, err = decryptCBC(key, data)
	case "aesgcm":
		out, err = decryptGCM(key, data, []byte(etcdKey))
	case "secretbox":
		out, err = decryptSecretbox(key, data)
	default:
		return nil, fmt.Errorf("%w with provider %q, which kubectl dr cannot decrypt (aescbc, aesgcm, secretbox)", ErrEncrypted, provider)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt %s (%s key %q): %w", etcdKey, provider, name, err)
	}
	return out, nil
}

func decryptCBC(key, data []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(data) < 2*aes.BlockSize || len(data)%aes.BlockSize != 0 {
		return nil, errors.New("not a whole number of AES blocks")
	}
	iv, data := data[:aes.BlockSize], data[aes.BlockSize:]
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, errors.New("bad padding: wrong key?")
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errors.New("bad padding: wrong key?")
		}
	}
	return out[:len(out)-pad], nil
}

func decryptGCM(key, data, ad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(data) < aead.NonceSize() {
		return nil, errors.New("shorter than a nonce")
	}
	return aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], ad)
}

func decryptSecretbox(key, data []byte) ([]byte, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secretbox key of %d bytes, want 32", len(key))
	}
	if len(data) < 24+secretbox.Overhead {
		return nil, errors.New("shorter than a nonce and a tag")
	}
	var k [32]byte
	var nonce [24]byte
	copy(k[:], key)
	copy(nonce[:], data[:24])
	out, ok := secretbox.Open(nil, data[24:], &nonce, &k)
	if !ok {
		return nil, errors.New("authentication failed: wrong key?")
	}
	return out, nil
}
