package etcdsnap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Revision reads the newest revision stored in a snapshot or member db file.
func Revision(path string) (int64, error) { return snapshotRevision(path) }

// snapshotRevision reads the newest revision stored in a snapshot file:
// the last key of etcd's "key" bucket is <main rev:8 bytes>_<sub rev:8>.
func snapshotRevision(path string) (int64, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	defer db.Close()
	var rev int64
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New("no key bucket")
		}
		k, _ := b.Cursor().Last()
		if len(k) < 8 {
			return nil
		}
		rev = int64(binary.BigEndian.Uint64(k[:8]))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read revision of %s: %w", path, err)
	}
	return rev, nil
}
