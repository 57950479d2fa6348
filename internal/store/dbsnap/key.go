package dbsnap

import (
	"fmt"
	"io"
	"os"

	"filippo.io/age"
)

// LoadRecipient reads an age identity file (AGE-SECRET-KEY-1...) and returns
// the recipient snapshots are encrypted to.
func LoadRecipient(path string) (age.Recipient, error) {
	id, err := LoadIdentity(path)
	if err != nil {
		return nil, err
	}
	return id.Recipient(), nil
}

// LoadIdentity reads the age identity that decrypts snapshots.
func LoadIdentity(path string) (*age.X25519Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot key: %w", err)
	}
	defer f.Close()
	return ParseIdentity(f, path)
}

// ParseIdentity reads an age identity; source names it in errors.
func ParseIdentity(r io.Reader, source string) (*age.X25519Identity, error) {
	path := source
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, fmt.Errorf("snapshot key %s: %w", path, err)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("snapshot key %s: no X25519 identity (generate one with `age-keygen` or `kubectl dr install`)", path)
}
