package k3sboot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix is where k3s keeps bootstrap data in the datastore.
const Prefix = "/bootstrap/"

// RefusedMessage is what k3s says when the datastore's bootstrap data was
// made with another token.
const RefusedMessage = "bootstrap data already found and encrypted with different token"

// Passphrase is the part of a server token k3s derives the key and the
// encryption from: the password of K10<ca-hash>::<user>:<password>, or
// the whole of a bare token. Trailing newlines (a token file's) are
// dropped.
func Passphrase(token string) string {
	token = strings.TrimRight(token, "\r\n")
	rest, ok := strings.CutPrefix(token, "K10")
	if !ok {
		return token
	}
	if _, creds, ok := strings.Cut(rest, "::"); ok {
		rest = creds
	}
	if _, pw, ok := strings.Cut(rest, ":"); ok {
		return pw
	}
	return rest
}

// Key is the datastore key of the bootstrap data a token encrypts:
// /bootstrap/ and the first 12 hex digits of the passphrase's sha256.
func Key(token string) string {
	sum := sha256.Sum256([]byte(Passphrase(token)))
	return Prefix + hex.EncodeToString(sum[:])[:12]
}

func aead(pass string, salt []byte) (cipher.AEAD, error) {
	key, err := pbkdf2.Key(sha1.New, pass, salt, 4096, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Encrypt seals data with the token as k3s stores bootstrap data.
func Encrypt(token string, data []byte) ([]byte, error) {
	raw := make([]byte, 4)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	salt := hex.EncodeToString(raw)
	g, err := aead(Passphrase(token), []byte(salt))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return []byte(salt + ":" + base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, data, nil))), nil
}

// ErrWrongToken means the bootstrap data does not open with the token.
var ErrWrongToken = errors.New("the token does not decrypt the bootstrap data")

// Decrypt opens bootstrap data with the token.
func Decrypt(token string, value []byte) ([]byte, error) {
	salt, b64, ok := strings.Cut(string(value), ":")
	if !ok {
		return nil, errors.New("bootstrap data: not <salt>:<base64>")
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("bootstrap data: %w", err)
	}
	g, err := aead(Passphrase(token), []byte(salt))
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("bootstrap data: too short")
	}
	plain, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], nil)
	if err != nil {
		return nil, ErrWrongToken
	}
	return plain, nil
}
