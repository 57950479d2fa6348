package dbsnap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// LoadRecipient reads the recipient snapshots are encrypted to: a file
// holding an age X25519 recipient (age1...), or, from installs before the
// keys were split, the identity itself. private tells the second: the
// caller should warn that the private key does not belong on a node.
func LoadRecipient(path string) (r age.Recipient, private bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read snapshot recipient: %w", err)
	}
	return ParseRecipient(data, path)
}

// ParseRecipient reads a recipient (age1..., comments and blank lines
// allowed) or an identity, whose recipient it returns with private set.
// source names the data in errors; errors never quote the data.
func ParseRecipient(data []byte, source string) (r age.Recipient, private bool, err error) {
	if bytes.Contains(data, []byte("AGE-SECRET-KEY-")) {
		id, err := ParseIdentity(bytes.NewReader(data), source)
		if err != nil {
			return nil, false, err
		}
		return id.Recipient(), true, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		x, err := age.ParseX25519Recipient(line)
		if err != nil {
			return nil, false, fmt.Errorf("snapshot recipient %s: not an age X25519 recipient (want one line age1...)", source)
		}
		return x, false, nil
	}
	return nil, false, fmt.Errorf("snapshot recipient %s: no recipient in the file (want one line age1...)", source)
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

// ParseIdentity reads an age identity; source names it in errors. The
// errors never quote the input: it is a private key.
func ParseIdentity(r io.Reader, source string) (*age.X25519Identity, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, fmt.Errorf("snapshot key %s: not an age identity file (AGE-SECRET-KEY-1...)", source)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("snapshot key %s: no X25519 identity (generate one with `age-keygen` or `kubectl dr install`)", source)
}
