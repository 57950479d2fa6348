package buckets

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

type env struct {
	t      *testing.T
	dir    string
	bucket objstore.Bucket
	store  objstore.Store
	id     *age.X25519Identity
	e      *Engine
	clock  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	b, err := objstore.OpenBucket(objstore.Config{URL: "file://" + filepath.Join(dir, "bucket")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, dir: dir, bucket: b, store: st.Sub("cluster"), id: id, clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	// PackSize 1: every object its own pack (TestPacks* fill packs).
	v.e = &Engine{Store: v.store, Recipient: id.Recipient(), SpoolDir: t.TempDir(), PageSize: 2, PackSize: 1,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return v.clock }, BlobGrace: -time.Hour}
	return v
}

func (v *env) src() Source {
	return Source{Name: "app", Bucket: v.bucket, Concurrency: 3, RetentionDays: 90}
}

// write puts an object into the source bucket with a modification time.
func (v *env) write(key, content string, at time.Time) {
	v.t.Helper()
	p := filepath.Join(v.dir, "bucket", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Chtimes(p, at, at); err != nil {
		v.t.Fatal(err)
	}
}

func (v *env) remove(key string) {
	v.t.Helper()
	if err := os.Remove(filepath.Join(v.dir, "bucket", filepath.FromSlash(key))); err != nil {
		v.t.Fatal(err)
	}
}

func (v *env) pass() Result {
	v.t.Helper()
	res, err := v.e.Pass(context.Background(), v.src())
	if err != nil {
		v.t.Fatal(err)
	}
	return res
}

// contents is the bucket at t as the store gives it back: key -> bytes.
func (v *env) contents(t time.Time) map[string]string {
	v.t.Helper()
	ctx := context.Background()
	idx, err := bucketobj.Load(ctx, v.store, "app")
	if err != nil {
		v.t.Fatal(err)
	}
	out := map[string]string{}
	for _, ver := range idx.At(t, "") {
		rc, err := bucketobj.Open(ctx, v.store, "app", ver, v.id)
		if err != nil {
			v.t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			v.t.Fatal(err)
		}
		out[ver.Key] = string(data)
	}
	return out
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func blobs(t *testing.T, st objstore.Store) int {
	objs, err := st.List(context.Background(), "buckets/app/blobs/")
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// Writes, overwrites and deletions over three passes: each time restores
// as the bucket was, the same bytes under two keys are stored once, and a
// pass with nothing changed copies nothing.
func TestPassesRecordVersionsAndTimesRestore(t *testing.T) {
	v := newEnv(t)
	t1 := v.clock.Add(-time.Hour)
	v.write("docs/a b.txt", "alpha", t1)
	v.write("docs/ü/é.txt", "beta", t1)
	v.write("media/"+strings.Repeat("k", 200)+"/x", "gamma", t1)
	v.write("copy/same.txt", "alpha", t1)
	v.write("z", "zeta", t1)
	res := v.pass()
	if res.Copied != 5 || res.Deleted != 0 {
		t.Fatalf("first pass: %+v", res)
	}
	if n := blobs(t, v.store); n != 4 {
		t.Fatalf("%d blobs for 4 distinct contents", n)
	}
	first := map[string]string{"docs/a b.txt": "alpha", "docs/ü/é.txt": "beta", "media/" + strings.Repeat("k", 200) + "/x": "gamma", "copy/same.txt": "alpha", "z": "zeta"}

	v.clock = v.clock.Add(time.Hour)
	t2 := v.clock.Add(-time.Minute)
	v.write("docs/a b.txt", "alpha 2", t2)
	v.remove("z")
	v.remove("docs/ü/é.txt")
	res = v.pass()
	if res.Copied != 1 || res.Deleted != 2 || res.Unchanged != 2 {
		t.Fatalf("second pass: %+v", res)
	}
	second := map[string]string{"docs/a b.txt": "alpha 2", "media/" + strings.Repeat("k", 200) + "/x": "gamma", "copy/same.txt": "alpha"}

	v.clock = v.clock.Add(time.Hour)
	v.write("z", "zeta", v.clock.Add(-time.Minute))
	res = v.pass()
	if res.Copied != 1 || res.BytesUploaded != 0 {
		t.Fatalf("third pass (z back with bytes stored before): %+v", res)
	}
	third := map[string]string{"docs/a b.txt": "alpha 2", "media/" + strings.Repeat("k", 200) + "/x": "gamma", "copy/same.txt": "alpha", "z": "zeta"}
	if res := v.pass(); res.Copied != 0 || res.Deleted != 0 || res.Segments != 0 {
		t.Fatalf("a pass with nothing changed: %+v", res)
	}

	for _, c := range []struct {
		at   time.Time
		want map[string]string
	}{{t1.Add(time.Second), first}, {v.clock.Add(-30 * time.Minute), second}, {v.clock, third}} {
		if got := v.contents(c.at); !equal(got, c.want) {
			t.Errorf("at %s: %v, want %v", c.at, got, c.want)
		}
	}
	idx, err := bucketobj.Load(context.Background(), v.store, "app")
	if err != nil {
		t.Fatal(err)
	}
	vs := idx.Versions("z")
	if len(vs) != 3 || vs[0].Deleted || !vs[1].Deleted || vs[2].Deleted {
		t.Fatalf("versions of z: %+v", vs)
	}
}

// failingBucket fails reading one key, as a source that goes away
// mid-pass does.
type failingBucket struct {
	objstore.Bucket
	key string
}

func (f failingBucket) Get(ctx context.Context, key string) (io.ReadCloser, objstore.BucketObject, error) {
	if key == f.key {
		return nil, objstore.BucketObject{}, errors.New("connection refused")
	}
	return f.Bucket.Get(ctx, key)
}

// A pass cut short by its source keeps the pages it finished, records
// nothing of the page it was in, and the next pass resumes after them.
func TestPassResumesAfterTheLastSegment(t *testing.T) {
	v := newEnv(t)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		v.write(k, "content of "+k, v.clock.Add(-time.Hour))
	}
	src := v.src()
	src.Bucket = failingBucket{v.bucket, "e"}
	if _, err := v.e.Pass(context.Background(), src); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("pass with e unreadable: %v", err)
	}
	idx, err := bucketobj.Load(context.Background(), v.store, "app")
	if err != nil {
		t.Fatal(err)
	}
	seg, ok := idx.Resume()
	if !ok || seg.Through != "d" {
		t.Fatalf("resume point: %+v %v", seg, ok)
	}
	if got := idx.At(time.Time{}, ""); len(got) != 4 || got[3].Key != "d" {
		t.Fatalf("listed after the failed pass: %+v", got)
	}
	v.clock = v.clock.Add(time.Minute)
	res := v.pass()
	if !res.Resumed || res.Copied != 2 || res.Listed != 2 {
		t.Fatalf("resumed pass: %+v", res)
	}
	if got := v.contents(time.Time{}); len(got) != 6 || got["e"] != "content of e" {
		t.Fatalf("after the resumed pass: %v", got)
	}
}

// A blob whose bytes are not the recorded ones fails the read at its end.
func TestOpenRefusesACorruptBlob(t *testing.T) {
	v := newEnv(t)
	v.e.Recipient = nil
	v.write("a", "the real bytes", v.clock.Add(-time.Hour))
	v.pass()
	idx, _ := bucketobj.Load(context.Background(), v.store, "app")
	ver := idx.At(time.Time{}, "")[0]
	p := filepath.Join(v.dir, "store", "cluster", "buckets", "app", filepath.FromSlash(ver.Blob))
	if err := os.WriteFile(p, []byte("the fake bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := bucketobj.Open(context.Background(), v.store, "app", ver, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, bucketobj.ErrCorrupt) {
		t.Fatalf("read of a corrupt blob: %v", err)
	}
}

// Retention drops history older than the window, keeps what a time in it
// needs, never the newest version of a live object, and deletes the blobs
// nothing names.
func TestRetentionKeepsTheWindow(t *testing.T) {
	v := newEnv(t)
	old := v.clock.AddDate(0, 0, -200)
	v.clock = old
	v.write("kept-old", "never changed", old.Add(-time.Hour))
	v.write("changed", "v1", old.Add(-time.Hour))
	v.write("gone", "deleted long ago", old.Add(-time.Hour))
	v.pass()
	v.clock = old.AddDate(0, 0, 10)
	v.write("changed", "v2", v.clock.Add(-time.Hour))
	v.remove("gone")
	v.pass()
	v.clock = old.AddDate(0, 0, 195)
	v.write("changed", "v3", v.clock.Add(-time.Hour))
	v.pass()
	before := blobs(t, v.store)
	n, err := v.e.Retain(context.Background(), "app", 90)
	if err != nil {
		t.Fatal(err)
	}
	// changed v1 and gone's two versions go; v2 stays (in force 90 days ago).
	if n != 3 {
		t.Fatalf("retention dropped %d versions, want 3", n)
	}
	if after := blobs(t, v.store); after != before-2 {
		t.Fatalf("blobs %d -> %d, want two fewer", before, after)
	}
	if idx, _ := bucketobj.Load(context.Background(), v.store, "app"); len(idx.Skipped) > 0 {
		t.Fatalf("skipped: %v", idx.Skipped)
	}
	if got := v.contents(v.clock.AddDate(0, 0, -89)); !equal(got, map[string]string{"kept-old": "never changed", "changed": "v2"}) {
		t.Fatalf("89 days ago after retention: %v", got)
	}
	if got := v.contents(time.Time{}); !equal(got, map[string]string{"kept-old": "never changed", "changed": "v3"}) {
		t.Fatalf("now after retention: %v", got)
	}
	idx, _ := bucketobj.Load(context.Background(), v.store, "app")
	if len(idx.Segments) != 1 || !idx.Segments[0].Base || len(idx.Superseded) != 0 {
		t.Fatalf("segments after retention: %d, superseded %v", len(idx.Segments), idx.Superseded)
	}
	// The next pass finds nothing to do.
	v.clock = v.clock.Add(time.Minute)
	if res := v.pass(); res.Copied != 0 || res.Deleted != 0 {
		t.Fatalf("pass after retention: %+v", res)
	}
}

// cancelBucket stops the pass (as a killed agent does) while it reads one
// key.
type cancelBucket struct {
	objstore.Bucket
	key    string
	cancel context.CancelFunc
}

func (c cancelBucket) Get(ctx context.Context, key string) (io.ReadCloser, objstore.BucketObject, error) {
	if key == c.key {
		c.cancel()
		<-ctx.Done()
		return nil, objstore.BucketObject{}, ctx.Err()
	}
	return c.Bucket.Get(ctx, key)
}

// An agent stopped mid-copy leaves no segment naming what it had not
// finished; the next pass resumes from the marker and copies the rest.
func TestPassStoppedMidCopyResumes(t *testing.T) {
	v := newEnv(t)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		v.write(k, "content of "+k, v.clock.Add(-time.Hour))
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := v.src()
	src.Bucket = cancelBucket{v.bucket, "d", cancel}
	if _, err := v.e.Pass(ctx, src); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped pass: %v", err)
	}
	idx, _ := bucketobj.Load(context.Background(), v.store, "app")
	if got := idx.At(time.Time{}, ""); len(got) != 2 {
		t.Fatalf("recorded after the stop: %+v", got)
	}
	res := v.pass()
	if !res.Resumed || res.Copied != 3 {
		t.Fatalf("resumed pass: %+v", res)
	}
	if got := v.contents(time.Time{}); len(got) != 5 {
		t.Fatalf("after the resumed pass: %v", got)
	}
}

// changingBucket hands out an object whose bytes are not its size the
// first time it is read, as an object overwritten while read.
type changingBucket struct {
	objstore.Bucket
	key   string
	reads *int
}

func (c changingBucket) Get(ctx context.Context, key string) (io.ReadCloser, objstore.BucketObject, error) {
	rc, info, err := c.Bucket.Get(ctx, key)
	if err == nil && key == c.key {
		*c.reads++
		if *c.reads == 1 {
			info.Size++
		}
	}
	return rc, info, err
}

// An object that changes while it is read is read again, and what is
// recorded is the object as read whole.
func TestObjectChangingWhileReadIsReadAgain(t *testing.T) {
	v := newEnv(t)
	v.write("a", "first", v.clock.Add(-time.Hour))
	reads := 0
	src := v.src()
	src.Bucket = changingBucket{v.bucket, "a", &reads}
	res, err := v.e.Pass(context.Background(), src)
	if err != nil || res.Copied != 1 || reads != 2 {
		t.Fatalf("pass: %+v %v, %d reads", res, err, reads)
	}
	if got := v.contents(time.Time{}); got["a"] != "first" {
		t.Fatalf("recorded: %v", got)
	}
}

// The agent loses the leadership mid-pass: it stops after the page it is
// on, that page recorded, and the new leader's pass resumes after it
// rather than copying the whole bucket a second time.
func TestPassStopsWhenItsMemberNoLongerLeads(t *testing.T) {
	v := newEnv(t)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		v.write(k, "content of "+k, v.clock.Add(-time.Hour))
	}
	asked := 0
	v.e.StillLeads = func(context.Context) (bool, error) { asked++; return false, nil }
	_, err := v.e.Pass(context.Background(), v.src())
	if !errors.Is(err, ErrNotLeader) || asked != 1 {
		t.Fatalf("pass after the leadership moved: %v (asked %d times), want ErrNotLeader after the first page", err, asked)
	}
	if got := v.contents(time.Time{}); len(got) != 2 || got["b"] != "content of b" {
		t.Fatalf("recorded before it stopped: %v, want the first page (a, b)", got)
	}

	// The new leader's agent: another engine on the same store.
	old := v.e
	v.e = &Engine{Store: old.Store, Recipient: old.Recipient, SpoolDir: old.SpoolDir, PageSize: old.PageSize, Log: old.Log, Now: old.Now,
		BlobGrace: old.BlobGrace, StillLeads: func(context.Context) (bool, error) { return true, nil }}
	v.clock = v.clock.Add(time.Minute)
	res := v.pass()
	if !res.Resumed || res.Copied != 4 || res.Listed != 4 {
		t.Fatalf("the new leader's pass: %+v, want it to resume after b and copy c-f", res)
	}
	if got := v.contents(time.Time{}); len(got) != 6 {
		t.Fatalf("after the new leader's pass: %v", got)
	}
}
