package kvsnap

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ErrNotSnapshot means the file is not an etcd v3 snapshot.
var ErrNotSnapshot = errors.New("not an etcd v3 snapshot")

// KeyValue is one key at the snapshot's newest revision. Key and Value are
// valid only during the callback that receives them.
type KeyValue struct {
	Key, Value                  []byte
	CreateRevision, ModRevision int64
}

// Snapshot is an open snapshot file: etcd's bbolt database, or a k3s
// server's SQLite datastore (kine's table).
type Snapshot struct {
	path string
	db   *bolt.DB
	sql  *sql.DB
}

// Open opens a snapshot file read-only. Its sha256 trailer (etcd appends
// one) is ignored: the caller has checked the file against its metadata.
// A SQLite file is read as kine keeps keys in it.
func Open(path string) (s *Snapshot, err error) {
	if ok, err := isSQLite(path); err != nil {
		return nil, err
	} else if ok {
		return openSQLite(path)
	}
	// A damaged file can make bbolt fault on its memory map or panic;
	// either is an error here, never a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open snapshot %s: %w: %v", path, ErrNotSnapshot, r)
		}
	}()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	return &Snapshot{path: path, db: db}, nil
}

// Close releases the file.
func (s *Snapshot) Close() error {
	if s.sql != nil {
		return s.sql.Close()
	}
	return s.db.Close()
}

// rev is where a key's newest version lies in the key bucket.
type rev struct{ main, sub uint64 }

// Each calls fn for every key under prefix that is live at the snapshot's
// newest revision, in key order, and returns that revision. etcd's "key"
// bucket holds every revision since the last compaction in revision
// order, keyed <main:8>'_'<sub:8>['t'], a trailing 't' marking a deletion:
// a first pass keeps, per key, only where its newest version lies; a
// second reads the values one at a time, dropping each large value's pages
// of the memory map once copied out. Memory grows with the number of keys,
// not with the size of their values.
func (s *Snapshot) Each(prefix string, fn func(kv KeyValue) error) (revision int64, err error) {
	if s.sql != nil {
		return s.eachSQLite(prefix, fn)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("read snapshot %s: %w: damaged: %v", s.path, ErrNotSnapshot, r)
		}
	}()
	var cbErr error
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return fmt.Errorf("no key bucket: %w", ErrNotSnapshot)
		}
		newest := map[string]rev{}
		p := []byte(prefix)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, tomb, ok := parseRevision(k)
			if !ok {
				return fmt.Errorf("revision key %x (%d bytes): %w", k[:min(len(k), 18)], len(k), ErrNotSnapshot)
			}
			if int64(r.main) > revision {
				revision = int64(r.main)
			}
			if len(v) == 0 {
				// etcdutl's restore with --bump-revision marks the new
				// revision with an empty entry: it holds no key.
				continue
			}
			key, ok := KeyOf(v)
			if !ok {
				return fmt.Errorf("revision %d: undecodable key-value: %w", r.main, ErrNotSnapshot)
			}
			if !bytes.HasPrefix(key, p) {
				continue
			}
			if tomb {
				delete(newest, string(key))
				continue
			}
			newest[string(key)] = r
		}
		keys := make([]string, 0, len(newest))
		for k := range newest {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv mvccpb.KeyValue
		bk := make([]byte, 17)
		for _, k := range keys {
			r := newest[k]
			binary.BigEndian.PutUint64(bk, r.main)
			bk[8] = '_'
			binary.BigEndian.PutUint64(bk[9:], r.sub)
			v := b.Get(bk)
			if v == nil {
				return fmt.Errorf("revision %d of %q vanished: %w", r.main, k, ErrNotSnapshot)
			}
			kv.Reset()
			if err := kv.Unmarshal(v); err != nil {
				return fmt.Errorf("revision %d of %q: %w", r.main, k, err)
			}
			// Unmarshal copied the value out of the map.
			release(v)
			if err := fn(KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}); err != nil {
				cbErr = err
				return err
			}
		}
		return nil
	})
	if err != nil {
		if cbErr != nil && errors.Is(err, cbErr) {
			return revision, err
		}
		return revision, fmt.Errorf("read snapshot %s: %w", s.path, err)
	}
	return revision, nil
}

// parseRevision reads a key bucket key: 17 bytes, or 18 with a trailing
// 't' for a deletion.
func parseRevision(k []byte) (r rev, tombstone, ok bool) {
	switch {
	case len(k) == 17:
	case len(k) == 18 && k[17] == 't':
		tombstone = true
	default:
		return rev{}, false, false
	}
	if k[8] != '_' {
		return rev{}, false, false
	}
	return rev{binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[9:17])}, tombstone, true
}

// KeyOf returns the key of a marshalled mvccpb.KeyValue (field 1) without
// decoding, or copying, the rest.
func KeyOf(v []byte) ([]byte, bool) {
	// A field given twice is the last one's, as protobuf decoders read it.
	var key []byte
	found := false
	for len(v) > 0 {
		tag, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, false
		}
		v = v[n:]
		field, wire := tag>>3, tag&7
		switch wire {
		case 0:
			_, n := binary.Uvarint(v)
			if n <= 0 {
				return nil, false
			}
			v = v[n:]
		case 1, 5:
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(v) < size {
				return nil, false
			}
			v = v[size:]
		case 2:
			l, n := binary.Uvarint(v)
			if n <= 0 || l > uint64(len(v)-n) {
				return nil, false
			}
			if field == 1 {
				key, found = v[n:n+int(l)], true
			}
			v = v[n+int(l):]
		default:
			return nil, false
		}
	}
	return key, found
}
