package minioadmin

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/secure-io/sio-go"
	"golang.org/x/crypto/argon2"
)

// MinIO's admin API encrypts some request and response bodies to the
// admin's secret key:
//
//	salt (32) | algorithm id (1) | nonce (8) | sio (DARE 2.0) stream
//
// the key being argon2id of the secret key and the salt (time 1, 64 MiB,
// 4 threads, 32 bytes) for ids 0 (AES-256-GCM) and 1 (ChaCha20-Poly1305),
// PBKDF2-SHA256 (8192 rounds) for id 2 (AES-256-GCM, a server in FIPS
// mode). This package writes id 0 and reads all three.
const (
	saltSize  = 32
	nonceSize = 8
	headerLen = saltSize + 1 + nonceSize

	idArgon2AESGCM   = 0x00
	idArgon2ChaCha20 = 0x01
	idPBKDF2AESGCM   = 0x02

	argon2Time    = 1
	argon2Memory  = 64 * 1024
	argon2Threads = 4
	pbkdf2Rounds  = 8192
	keySize       = 32
)

// ErrDecrypt is a response body that is not the admin API's encryption to
// the admin's secret key: cut short, another algorithm, or changed.
var ErrDecrypt = errors.New("the admin API's answer does not decrypt with the admin secret key")

// kdf derives the stream key of an algorithm id from a salt.
type kdf func(id byte, salt []byte) ([]byte, error)

// passwordKDF is MinIO's derivation from the admin's secret key.
func passwordKDF(password string) kdf {
	return func(id byte, salt []byte) ([]byte, error) {
		switch id {
		case idArgon2AESGCM, idArgon2ChaCha20:
			return argon2.IDKey([]byte(password), salt, argon2Time, argon2Memory, argon2Threads, keySize), nil
		case idPBKDF2AESGCM:
			return pbkdf2.Key(sha256.New, password, salt, pbkdf2Rounds, keySize)
		}
		return nil, fmt.Errorf("%w: unknown algorithm id %d", ErrDecrypt, id)
	}
}

func algorithm(id byte) sio.Algorithm {
	if id == idArgon2ChaCha20 {
		return sio.ChaCha20Poly1305
	}
	return sio.AES_256_GCM
}

// encrypt seals data for the server, as the admin with secret key password.
func encrypt(password string, data []byte) ([]byte, error) {
	return encryptWith(passwordKDF(password), idArgon2AESGCM, data)
}

func encryptWith(derive kdf, id byte, data []byte) ([]byte, error) {
	header := make([]byte, headerLen)
	if _, err := rand.Read(header[:saltSize]); err != nil {
		return nil, err
	}
	header[saltSize] = id
	if _, err := rand.Read(header[saltSize+1:]); err != nil {
		return nil, err
	}
	key, err := derive(id, header[:saltSize])
	if err != nil {
		return nil, err
	}
	stream, err := algorithm(id).Stream(key)
	if err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(header)
	w := stream.EncryptWriter(out, header[saltSize+1:], nil)
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// decrypt opens a body the server sealed to the admin's secret key.
func decrypt(password string, data []byte) ([]byte, error) {
	return decryptWith(passwordKDF(password), data)
}

func decryptWith(derive kdf, data []byte) ([]byte, error) {
	if len(data) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its %d-byte header", ErrDecrypt, len(data), headerLen)
	}
	salt, id, nonce := data[:saltSize], data[saltSize], data[saltSize+1:headerLen]
	key, err := derive(id, salt)
	if err != nil {
		return nil, err
	}
	stream, err := algorithm(id).Stream(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	plain, err := io.ReadAll(stream.DecryptReader(bytes.NewReader(data[headerLen:]), nonce, nil))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return plain, nil
}
