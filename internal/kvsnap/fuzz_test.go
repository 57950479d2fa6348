package kvsnap

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The values of the key bucket are any bytes in a damaged snapshot: KeyOf
// must never panic and must agree with the real decoder when it answers.
func FuzzKeyOf(f *testing.F) {
	for _, kv := range []mvccpb.KeyValue{
		{Key: []byte("/registry/configmaps/default/cm"), Value: []byte("k8s\x00x"), ModRevision: 7, CreateRevision: 3, Version: 2},
		{Key: []byte("/registry/namespaces/default"), Lease: 99},
	} {
		b, _ := kv.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		key, ok := KeyOf(v)
		var kv mvccpb.KeyValue
		if ok && kv.Unmarshal(v) == nil && len(kv.Key) > 0 && !bytes.Equal(key, kv.Key) {
			t.Fatalf("KeyOf = %q, the decoder says %q", key, kv.Key)
		}
	})
}

// A snapshot file is read after its checksum matched, but a build must
// not crash on a damaged one either: Open and Each return errors.
func FuzzEach(f *testing.F) {
	f.Add(tinySnapshot(f))
	kine, err := os.ReadFile(kineDB(f, [][]any{{"/registry/namespaces/a", 1, 0, 0, []byte("ns")}}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kine)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "snap.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = s.Each("", func(KeyValue) error { return nil })
	})
}

// tinySnapshot lays down etcd's key bucket the way the backend does, in a
// bolt file of the smallest page size.
func tinySnapshot(f *testing.F) []byte {
	path := filepath.Join(f.TempDir(), "seed.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 1024})
	if err != nil {
		f.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("key"))
		if err != nil {
			return err
		}
		for i, key := range []string{"/registry/configmaps/a/x", "/registry/namespaces/a", "/registry/configmaps/a/x"} {
			k := make([]byte, 17, 18)
			binary.BigEndian.PutUint64(k, uint64(i+2))
			k[8] = '_'
			if i == 2 {
				k = append(k, 't')
			}
			kv := mvccpb.KeyValue{Key: []byte(key), Value: []byte("v"), ModRevision: int64(i + 2)}
			v, _ := kv.Marshal()
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}
