package buckets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
)

// Many small objects go into a few packs, a big one into a blob of its
// own, the same bytes twice are stored once, and every object reads back
// as it was written, through Open and through ReadEach.
func TestPacksHoldManySmallObjects(t *testing.T) {
	v := newEnv(t)
	v.e.PackSize, v.e.PageSize = 64<<10, 1000
	rng := rand.New(rand.NewSource(1))
	want := map[string]string{}
	at := v.clock.Add(-time.Hour)
	for i := range 300 {
		b := make([]byte, 1000+rng.Intn(2000))
		rng.Read(b)
		key := fmt.Sprintf("small/%03d", i)
		v.write(key, string(b), at)
		want[key] = string(b)
	}
	v.write("dup/one", want["small/007"], at)
	want["dup/one"] = want["small/007"]
	big := make([]byte, bucketobj.MaxPacked+1)
	rng.Read(big)
	v.write("big", string(big), at)
	want["big"] = string(big)

	res := v.pass()
	if res.Copied != len(want) {
		t.Fatalf("copied %d of %d", res.Copied, len(want))
	}
	// ~600 KiB of small objects in 64 KiB packs: about ten, plus the big blob.
	if n := blobs(t, v.store); n > 14 {
		t.Fatalf("%d stored objects for 301 small objects and a big one: not packed", n)
	}
	if got := v.contents(time.Time{}); !equal(got, want) {
		t.Fatalf("read back through Open: %d objects, want %d", len(got), len(want))
	}
	idx, err := bucketobj.Load(context.Background(), v.store, "app")
	if err != nil {
		t.Fatal(err)
	}
	state := idx.At(time.Time{}, "")
	for _, ver := range state {
		switch {
		case ver.Key == "big" && ver.Blob != bucketobj.BlobKey(ver.SHA256, true):
			t.Errorf("the big object is in %s, not a blob of its own", ver.Blob)
		case ver.Key != "big" && !bucketobj.IsPack(ver.Blob):
			t.Errorf("%s is in %s, not a pack", ver.Key, ver.Blob)
		}
	}
	var mu sync.Mutex
	got := map[string]string{}
	err = bucketobj.ReadEach(context.Background(), v.store, "app", state, v.id, 4, func(ver bucketobj.Version, r io.Reader) error {
		b, err := io.ReadAll(r)
		mu.Lock()
		got[ver.Key] = string(b)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, want) {
		t.Fatalf("read back through ReadEach: %d objects, want %d", len(got), len(want))
	}
}

// A pack whose bytes changed in the store fails the read of the objects
// in it, naming one, and nothing of it is handed out.
func TestPackCorruptInTheStoreIsNamed(t *testing.T) {
	v := newEnv(t)
	v.e.PackSize, v.e.Recipient = 1<<20, nil
	at := v.clock.Add(-time.Hour)
	v.write("a", "first object", at)
	v.write("b", "second object", at)
	v.pass()
	idx, _ := bucketobj.Load(context.Background(), v.store, "app")
	state := idx.At(time.Time{}, "")
	if len(state) != 2 || state[0].Blob != state[1].Blob {
		t.Fatalf("want both objects in one pack: %+v", state)
	}
	p := filepath.Join(v.dir, "store", "cluster", "buckets", "app", filepath.FromSlash(state[1].Blob))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("second"), []byte("SECOND"), 1)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var handed []string
	err = bucketobj.ReadEach(context.Background(), v.store, "app", state, nil, 1, func(ver bucketobj.Version, r io.Reader) error {
		handed = append(handed, ver.Key)
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if !errors.Is(err, bucketobj.ErrCorrupt) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("read of a changed pack: %v", err)
	}
	for _, k := range handed {
		if k == "b" {
			t.Fatalf("handed out b's changed bytes (%v)", handed)
		}
	}
}

// Retention deletes a pack only once no version it keeps is in it.
func TestRetentionKeepsAPackAVersionNeeds(t *testing.T) {
	v := newEnv(t)
	v.e.PackSize = 1 << 20
	old := v.clock.AddDate(0, 0, -200)
	v.clock = old
	v.write("kept", "never changed", old.Add(-time.Hour))
	v.write("gone", "deleted long ago", old.Add(-time.Hour))
	v.pass()
	v.clock = old.AddDate(0, 0, 10)
	v.remove("gone")
	v.write("later", "written later", v.clock.Add(-time.Hour))
	v.pass()
	v.clock = old.AddDate(0, 0, 20)
	v.remove("later")
	v.pass()
	v.clock = old.AddDate(0, 0, 200)
	if n := blobs(t, v.store); n != 2 {
		t.Fatalf("%d packs before retention, want 2", n)
	}
	if _, err := v.e.Retain(context.Background(), "app", 90); err != nil {
		t.Fatal(err)
	}
	// The first pack holds "kept" (live): it stays, with "gone"'s bytes in
	// it. The second holds only "later", deleted 180 days ago: it goes.
	if n := blobs(t, v.store); n != 1 {
		t.Fatalf("%d packs after retention, want 1", n)
	}
	if got := v.contents(time.Time{}); !equal(got, map[string]string{"kept": "never changed"}) {
		t.Fatalf("after retention: %v", got)
	}
}
