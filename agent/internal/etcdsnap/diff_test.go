package etcdsnap

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestParseKey(t *testing.T) {
	for key, want := range map[string][3]string{
		"/registry/configmaps/team-a/settings":                 {"configmaps", "team-a", "settings"},
		"/registry/namespaces/team-a":                          {"namespaces", "", "team-a"},
		"/registry/deployments/default/web":                    {"deployments", "default", "web"},
		"/registry/services/specs/default/kubernetes":          {"services", "default", "kubernetes"},
		"/registry/services/endpoints/default/kubernetes":      {"endpoints", "default", "kubernetes"},
		"/registry/widgets.example.com/widgets/team-a/w1":      {"widgets.widgets.example.com", "team-a", "w1"},
		"/registry/apiregistration.k8s.io/apiservices/v1.apps": {"apiservices.apiregistration.k8s.io", "", "v1.apps"},
		"/registry/ranges/serviceips":                          {"ranges", "", "serviceips"},
		"/bootstrap/abc123":                                    {OtherKeys, "", "/bootstrap/abc123"},
	} {
		gr, ns, name := ParseKey(key)
		if got := [3]string{gr, ns, name}; got != want {
			t.Errorf("ParseKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// writeSnapshot lays down etcd's key bucket as the backend does: one entry
// per revision, a trailing 't' on deletions.
func writeSnapshot(t *testing.T, revs []struct {
	key, value string
	deleted    bool
}) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "snap.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("key"))
		if err != nil {
			return err
		}
		for i, r := range revs {
			k := make([]byte, 17, 18)
			binary.BigEndian.PutUint64(k, uint64(i+2))
			k[8] = '_'
			if r.deleted {
				k = append(k, 't')
			}
			kv := mvccpb.KeyValue{Key: []byte(r.key), Value: []byte(r.value), ModRevision: int64(i + 2)}
			v, err := kv.Marshal()
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSnapshotDiff(t *testing.T) {
	path := writeSnapshot(t, []struct {
		key, value string
		deleted    bool
	}{
		{key: "/registry/configmaps/a/kept", value: "v1"},
		{key: "/registry/configmaps/a/changed", value: "old"},
		{key: "/registry/configmaps/a/gone-from-live", value: "v1"},
		{key: "/registry/configmaps/a/deleted-before-snapshot", value: "v1"},
		{key: "/registry/configmaps/a/deleted-before-snapshot", deleted: true},
		{key: "/registry/configmaps/a/kept", value: "v1"},
	})
	snap, err := SnapshotContents(path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != 7 || len(snap.Keys) != 3 {
		t.Fatalf("snapshot: revision %d, %d keys; want 7 and 3 (a deleted key is not in it)", snap.Revision, len(snap.Keys))
	}
	live := &Contents{Keys: map[string][32]byte{}}
	for k, v := range map[string]string{
		"/registry/configmaps/a/kept":    "v1",
		"/registry/configmaps/a/changed": "new",
		"/registry/configmaps/b/created": "v1",
		"/registry/namespaces/b":         "ns",
	} {
		live.Keys[k] = sum(v)
	}
	got := Diff(snap, live)
	want := []Impact{
		{GroupResource: "configmaps", Namespace: "a", Reappear: 1, Change: 1, Unchanged: 1, ReappearNames: []string{"gone-from-live"}, ChangeNames: []string{"changed"}},
		{GroupResource: "configmaps", Namespace: "b", Disappear: 1, DisappearNames: []string{"created"}},
		{GroupResource: "namespaces", Disappear: 1, DisappearNames: []string{"b"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff =\n%+v\nwant\n%+v", got, want)
	}
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
