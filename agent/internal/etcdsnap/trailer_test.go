package etcdsnap

import (
	"crypto/sha256"
	"errors"
	"math/rand"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

func TestTrailerCheck(t *testing.T) {
	db := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(db)
	sum := sha256.Sum256(db)
	good := append(append([]byte{}, db...), sum[:]...)
	bad := append([]byte{}, good...)
	bad[100] ^= 1

	for _, chunk := range []int{1, 7, 31, 32, 33, 512, 5000} {
		for name, tc := range map[string]struct {
			data []byte
			ok   bool
		}{"intact": {good, true}, "flipped bit": {bad, false}, "truncated": {good[:len(good)-1], false}, "no trailer": {db, false}} {
			c := newTrailerCheck()
			for i := 0; i < len(tc.data); i += chunk {
				c.Write(tc.data[i:min(i+chunk, len(tc.data))])
			}
			err := c.Verify()
			if all := sha256.Sum256(tc.data); string(c.Sum256()) != string(all[:]) {
				t.Errorf("chunk %d, %s: Sum256 differs from sha256 of all bytes", chunk, name)
			}
			if tc.ok && err != nil {
				t.Errorf("chunk %d, %s: %v", chunk, name, err)
			}
			if !tc.ok && !errors.Is(err, dbsnap.ErrChecksum) {
				t.Errorf("chunk %d, %s: err = %v, want dbsnap.ErrChecksum", chunk, name, err)
			}
		}
	}
}
