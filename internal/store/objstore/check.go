package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
)

// check round-trips a small object.
func check(ctx context.Context, s Store) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	key := ".dr-check/" + hex.EncodeToString(b)
	if _, err := s.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("store %s is not writable: %w", s, err)
	}
	defer s.Delete(context.WithoutCancel(ctx), key)
	rc, err := s.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("store %s: read back: %w", s, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("store %s: read back: %w", s, err)
	}
	if !bytes.Equal(got, b) {
		return fmt.Errorf("store %s: read back different bytes", s)
	}
	return nil
}
