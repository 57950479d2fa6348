package minioadmin

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

// What is sealed to the admin's secret key opens with it, for each
// algorithm MinIO writes; with another key, cut short or changed it does
// not, with ErrDecrypt.
func TestEncryptDecrypt(t *testing.T) {
	plain := []byte(`{"secretKey":"node-secret-0123456789","status":"enabled"}`)
	sealed, err := encrypt("admin-secret", plain)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[saltSize] != idArgon2AESGCM || len(sealed) != headerLen+len(plain)+16 {
		t.Errorf("sealed: id %d, %d bytes; want id 0 and %d bytes", sealed[saltSize], len(sealed), headerLen+len(plain)+16)
	}
	if bytes.Contains(sealed, []byte("node-secret")) {
		t.Error("the secret key is readable in the sealed body")
	}
	got, err := decrypt("admin-secret", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
	for _, id := range []byte{idArgon2ChaCha20, idPBKDF2AESGCM} {
		s, err := encryptWith(passwordKDF("admin-secret"), id, plain)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decrypt("admin-secret", s); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("algorithm %d: %q, %v", id, got, err)
		}
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	unknown := bytes.Clone(sealed)
	unknown[saltSize] = 9
	for name, data := range map[string][]byte{
		"another key": nil, "cut short": sealed[:len(sealed)-5], "header only": sealed[:headerLen],
		"too short": sealed[:10], "changed": flipped, "unknown algorithm": unknown,
	} {
		password := "admin-secret"
		if data == nil {
			data, password = sealed, "other-secret"
		}
		if got, err := decrypt(password, data); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %q, %v; want ErrDecrypt", name, got, err)
		}
	}
}

// cheapKDF stands in for argon2 in the fuzz target, which would
// otherwise run a few times a second.
func cheapKDF(id byte, salt []byte) ([]byte, error) {
	if id > idPBKDF2AESGCM {
		return nil, ErrDecrypt
	}
	k := sha256.Sum256(salt)
	return k[:], nil
}

// Whatever the server (or whoever answers in its place) sends, decrypting
// it returns the plaintext or ErrDecrypt, never panics.
func FuzzDecrypt(f *testing.F) {
	for _, id := range []byte{idArgon2AESGCM, idArgon2ChaCha20, idPBKDF2AESGCM} {
		for _, p := range []string{"", `{"policiesAttached":["dr-node-x"]}`, string(bytes.Repeat([]byte("x"), 20000))} {
			s, err := encryptWith(cheapKDF, id, []byte(p))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(s)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, headerLen))
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := decryptWith(cheapKDF, data)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("error %v is not ErrDecrypt", err)
			}
			return
		}
		if len(plain) >= len(data) {
			t.Fatalf("%d bytes of plaintext from %d sealed", len(plain), len(data))
		}
	})
}
