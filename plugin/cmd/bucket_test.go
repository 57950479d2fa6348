package cmd_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// seedBucket records a source's history in the store the way passes do:
// blobs first, then one segment per pass. Each pass maps key -> content,
// "" for a deletion.
func (e *env) seedBucket(source string, passes []time.Time, contents []map[string]string) {
	e.t.Helper()
	e.seedBucketFrom(source, "s3://"+source+" at http://127.0.0.1:1", passes, contents)
}

// seedBucketFrom is seedBucket for a source whose bucket is origin.
func (e *env) seedBucketFrom(source, origin string, passes []time.Time, contents []map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	w := &bucketobj.BlobWriter{Store: e.store, Source: source, Recipient: e.snapshotKey.Recipient()}
	for i, at := range passes {
		seg := &bucketobj.Segment{Source: source, Bucket: origin, Pass: at, Final: true}
		var keys []string
		for k := range contents[i] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := contents[i][k]
			if c == "" {
				seg.Entries = append(seg.Entries, bucketobj.Version{Key: k, Time: at, Deleted: true})
				continue
			}
			s, err := w.Save(ctx, strings.NewReader(c), int64(len(c)))
			if err != nil {
				e.t.Fatal(err)
			}
			seg.Entries = append(seg.Entries, bucketobj.Version{Key: k, Time: at.Add(-time.Second), Size: s.Size, MD5: s.MD5, SHA256: s.SHA256, Blob: s.Blob})
		}
		if err := bucketobj.WriteSegment(ctx, e.store, seg); err != nil {
			e.t.Fatal(err)
		}
	}
}

// bucket ls and restore read the store directly: the bucket at a time,
// a preview of exactly what a restore writes and deletes, nothing written
// without a yes, and then the target holds the bucket as it was.
func TestBucketRestoreIntoADirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.snapshotKey = id
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	e.seedBucket("media", []time.Time{t1, t2}, []map[string]string{
		{"docs/a b.txt": "one", "ü/b": "two"},
		{"docs/a b.txt": "one v2", "ü/b": "", "c": "three"},
	})

	r := e.run("bucket", "ls", "media", "--at", t1.Add(time.Minute).Format(time.RFC3339), "-o", "json")
	var ls printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls.Items) != 2 || ls.Items[0].Key != "docs/a b.txt" || ls.Items[1].Key != "ü/b" {
		t.Fatalf("bucket ls --at t1: %s", r)
	}
	r = e.run("bucket", "versions", "media", "ü/b", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls.Items) != 2 || !ls.Items[1].Deleted {
		t.Fatalf("bucket versions: %s", r)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := "file://" + dir
	to := t1.Add(time.Minute).Format(time.RFC3339)
	r = e.run("bucket", "restore", "media", "--to", to, "--target-bucket", target, "--dry-run", "-o", "json")
	var plan printers.BucketRestore
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &plan) != nil {
		t.Fatalf("restore --dry-run: %s", r)
	}
	got := map[string]string{}
	for _, c := range plan.Changes {
		got[c.Key] = c.Action
	}
	if len(got) != 3 || got["docs/a b.txt"] != "create" || got["ü/b"] != "create" || got["c"] != "delete" || plan.Done {
		t.Fatalf("plan %v (done %v)", got, plan.Done)
	}

	r = e.run("bucket", "restore", "media", "--to", to, "--target-bucket", target)
	if r.code != 2 || !strings.Contains(r.stderr, "not confirmed: nothing was written") {
		t.Fatalf("restore without --yes off a terminal: %s", r)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "c")); string(data) != "junk" {
		t.Fatalf("an unconfirmed restore touched the target")
	}

	r = e.run("bucket", "restore", "media", "--to", to, "--target-bucket", target, "--yes")
	if r.code != 0 {
		t.Fatalf("restore --yes: %s", r)
	}
	for k, want := range map[string]string{"docs/a b.txt": "one", "ü/b": "two"} {
		if data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k))); err != nil || string(data) != want {
			t.Errorf("%q after the restore: %q %v, want %q", k, data, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
		t.Errorf("c was not deleted: %v", err)
	}

	// A copy whose bytes are not the recorded ones is never written.
	blobs, _ := filepath.Glob(filepath.Join(e.storeDir, clusterID, "buckets", "media", "blobs", "*", "*"))
	for _, b := range blobs {
		if err := os.WriteFile(b, []byte("tampered"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir2 := t.TempDir()
	r = e.run("bucket", "restore", "media", "--to", to, "--target-bucket", "file://"+dir2, "--yes")
	if r.code != 1 {
		t.Fatalf("restore from tampered copies: %s", r)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) != 0 {
		t.Fatalf("a restore from tampered copies wrote %d entries", len(entries))
	}
}

// bucket backup needs the agent that runs the passes: an agent on a node
// without an etcd member is refused with what to do.
func TestBucketBackupNeedsTheLeadersAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("agent-1", nil)
	r := e.run("bucket", "backup", "media")
	if r.code != 1 || !strings.Contains(r.stderr, "bucket passes run on the etcd leader's agent") {
		t.Fatalf("bucket backup without a leader: %s", r)
	}
	r = e.run("bucket", "ls", "nothing")
	if r.code != 1 || !strings.Contains(r.stderr, "holds no copy of bucket source \"nothing\"") {
		t.Fatalf("bucket ls of an unknown source: %s", r)
	}
}

// Restoring into the original bucket saves what it overwrites or deletes
// into the store first: bucket versions lists it "saved aside", and a
// restore to just before the first restore brings it back.
func TestBucketRestoreIntoTheOriginalSavesAside(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.snapshotKey = id
	dir := t.TempDir()
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e.seedBucketFrom("media", "file://"+dir, []time.Time{t1}, []map[string]string{{"a": "one", "b": "two"}})
	for k, c := range map[string]string{"a": "ransomed", "stray": "new"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run("bucket", "restore", "media", "--to", t1.Format(time.RFC3339), "--yes", "-o", "json")
	var done printers.BucketRestore
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &done) != nil {
		t.Fatalf("restore into the original: %s", r)
	}
	if done.Create != 1 || done.Overwrite != 1 || done.Delete != 1 || done.SavedAside != 2 || !done.Done {
		t.Fatalf("restore: %+v", done)
	}
	for k, want := range map[string]string{"a": "one", "b": "two"} {
		if data, _ := os.ReadFile(filepath.Join(dir, k)); string(data) != want {
			t.Errorf("%s = %q, want %q", k, data, want)
		}
	}
	r = e.run("bucket", "versions", "media", "a", "-o", "json")
	var vl printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vl) != nil || len(vl.Items) != 2 || !vl.Items[1].Aside {
		t.Fatalf("versions of a: %s", r)
	}
	// What the restore replaced is restorable: into another directory, at
	// the time it was saved.
	other := t.TempDir()
	r = e.run("bucket", "restore", "media", "--to", "now", "--target-bucket", "file://"+other, "--yes")
	if r.code != 0 {
		t.Fatalf("restore of the saved objects: %s", r)
	}
	for k, want := range map[string]string{"a": "ransomed", "stray": "new", "b": "two"} {
		if data, _ := os.ReadFile(filepath.Join(other, k)); string(data) != want {
			t.Errorf("saved %s = %q, want %q", k, data, want)
		}
	}
}
