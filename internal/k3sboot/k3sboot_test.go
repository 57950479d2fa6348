package k3sboot

import (
	"errors"
	"testing"
)

func TestPassphrase(t *testing.T) {
	for in, want := range map[string]string{
		"K10abc::server:s3cret\n": "s3cret",
		"s3cret":                  "s3cret",
		"K10::node:pw":            "pw",
		"K10abc::pw":              "pw",
	} {
		if got := Passphrase(in); got != want {
			t.Errorf("Passphrase(%q) = %q, want %q", in, got, want)
		}
	}
}

// The key k3s stores bootstrap data under: sha256("s3cret") begins
// 1ec1c26b50d5.
func TestKey(t *testing.T) {
	if got := Key("K10abc::server:s3cret\n"); got != "/bootstrap/1ec1c26b50d5" {
		t.Errorf("Key = %s", got)
	}
	if Key("s3cret") != Key("K10ffff::server:s3cret") {
		t.Error("a bare token and a full one with the same password give different keys")
	}
}

func TestEncryptDecrypt(t *testing.T) {
	v, err := Encrypt("K10abc::server:s3cret", []byte(`{"ServerCA":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt("s3cret", v)
	if err != nil || string(got) != `{"ServerCA":{}}` {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := Decrypt("other", v); !errors.Is(err, ErrWrongToken) {
		t.Errorf("wrong token: %v, want ErrWrongToken", err)
	}
	if _, err := Decrypt("s3cret", []byte("garbage")); err == nil {
		t.Error("garbage decrypted")
	}
}
