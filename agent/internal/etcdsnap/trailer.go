package etcdsnap

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// trailerCheck verifies etcd's snapshot stream as it passes: the stream is
// the bolt database followed by the sha256 of the database. It hashes all
// but the last 32 bytes it has seen and compares them with those.
type trailerCheck struct {
	h    hash.Hash
	tail []byte
	n    int64
}

func newTrailerCheck() *trailerCheck { return &trailerCheck{h: sha256.New()} }

func (t *trailerCheck) Write(p []byte) (int, error) {
	t.n += int64(len(p))
	if len(p) >= sha256.Size {
		// Everything held back so far, and all of p but its last 32 bytes,
		// are database bytes.
		t.h.Write(t.tail)
		t.h.Write(p[:len(p)-sha256.Size])
		t.tail = append(t.tail[:0], p[len(p)-sha256.Size:]...)
		return len(p), nil
	}
	t.tail = append(t.tail, p...)
	if over := len(t.tail) - sha256.Size; over > 0 {
		t.h.Write(t.tail[:over])
		t.tail = append(t.tail[:0], t.tail[over:]...)
	}
	return len(p), nil
}

// Verify checks the trailer once the whole stream has been written.
func (t *trailerCheck) Verify() error {
	// etcd's db is a multiple of the bolt page size; the trailer makes the
	// size 32 past it (etcd's own hasChecksum test).
	if t.n%512 != sha256.Size || len(t.tail) != sha256.Size {
		return fmt.Errorf("%w: no sha256 trailer (size %d)", dbsnap.ErrChecksum, t.n)
	}
	if sum := t.h.Sum(nil); !bytes.Equal(sum, t.tail) {
		return fmt.Errorf("%w: trailer %x, computed %x", dbsnap.ErrChecksum, t.tail, sum)
	}
	return nil
}

// Sum256 is the sha256 of everything written (database and trailer),
// computed from the running hash instead of a second pass.
func (t *trailerCheck) Sum256() []byte {
	state, err := t.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // sha256's state always marshals
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic(err)
	}
	h.Write(t.tail)
	return h.Sum(nil)
}
