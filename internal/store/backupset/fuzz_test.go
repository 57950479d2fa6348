package backupset

import (
	"context"
	"errors"
	"strings"
	"testing"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// A set record comes from the store: Read returns the set it names or an
// error that marks it unusable, never panics.
func FuzzReadSet(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"backup-20260101-000000","phase":"Completed","etcd":{"node":"n1","snapshot":"s"},"files":[{"node":"n1","snapshotID":"abc"}]}`))
	f.Add([]byte(`{"id":"backup-20260101-000000","files":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		const id = "backup-20260101-000000"
		if _, err := store.Put(ctx, "sets/"+id+".json", strings.NewReader(string(data)), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		s, err := Read(ctx, store, id)
		switch {
		case err == nil && s.ID != id:
			t.Fatalf("Read returned set %q for %s", s.ID, id)
		case err != nil && !errors.Is(err, drstore.ErrBadRecord):
			t.Fatalf("a bad record's error %v is not ErrBadRecord", err)
		}
	})
}
