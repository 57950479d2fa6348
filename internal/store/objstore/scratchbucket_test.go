package objstore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A scratch bucket beside a file:// bucket is a sibling directory: made
// once (not twice), listed by prefix, removed with what it holds.
func TestScratchBucketBesideAFileBucket(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := Config{URL: "file://" + filepath.Join(dir, "app")}
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := SiblingBucket(src, "dr-drill-x-1234")
	if err != nil || c.URL != "file://"+filepath.Join(dir, "dr-drill-x-1234") {
		t.Fatalf("SiblingBucket: %q %v", c.URL, err)
	}
	if err := MakeBucket(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := MakeBucket(ctx, c); err == nil {
		t.Error("a scratch bucket was made twice")
	}
	b, err := OpenBucket(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "a/b.txt", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	names, err := ListBuckets(ctx, src, "dr-drill-")
	if err != nil || !slices.Equal(names, []string{"dr-drill-x-1234"}) {
		t.Errorf("ListBuckets: %v %v", names, err)
	}
	if err := RemoveBucket(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dr-drill-x-1234")); !os.IsNotExist(err) {
		t.Errorf("the scratch bucket's directory after RemoveBucket: %v", err)
	}
	if err := RemoveBucket(ctx, c); err != nil {
		t.Errorf("removing a removed bucket: %v", err)
	}
	if s3, err := SiblingBucket(Config{URL: "s3://app-media", Endpoint: "http://x"}, "dr-drill-y"); err != nil || s3.URL != "s3://dr-drill-y" || s3.Endpoint != "http://x" {
		t.Errorf("SiblingBucket of s3: %+v %v", s3, err)
	}
}
