package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(Config{URL: "file://" + root})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Sub("cluster-1")
	if err := c.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}
	if _, err := c.Put(ctx, "etcd/n1/a.json", strings.NewReader("meta"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "etcd/n1/a.db.zst", bytes.NewReader(make([]byte, 1000)), 1000); err != nil {
		t.Fatal(err)
	}
	// A half-written object (a crashed Put) is never listed.
	if err := os.WriteFile(filepath.Join(root, "cluster-1", "etcd", "n1", "b.json.part"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, "etcd/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, " ") != "etcd/n1/a.db.zst etcd/n1/a.json" {
		t.Errorf("list = %v", keys)
	}
	rc, err := c.Get(ctx, "etcd/n1/a.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "meta" {
		t.Errorf("get = %q", got)
	}
	if err := c.Delete(ctx, "etcd/n1/a.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "etcd/n1/a.json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := c.Stat(ctx, "etcd/n1/a.db.zst"); err != nil {
		t.Errorf("stat: %v", err)
	}
	for _, bad := range []string{"../escape", "/abs", "a/../../b", ""} {
		if _, err := c.Put(ctx, bad, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) accepted a key that escapes the store", bad)
		}
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for url, want := range map[string]string{
		"":                 "no store configured",
		"ftp://x":          `unknown scheme "ftp"`,
		"s3://":            "no bucket",
		"file://host/path": "absolute path",
		"s3://bucket/p":    "no S3 credentials",
		"file:///":         "no directory",
	} {
		_, err := Open(Config{URL: url})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", url, err, want)
		}
	}
}

// An object the store holds other bytes of than Put sent fails the Put,
// and is not left behind to be listed as good.
func TestFileStorePutVerifiesContent(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	afterCommit = func(path string) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{0xff}, 10); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { afterCommit = nil })

	_, err = s.Put(ctx, "etcd/n1/a.db.zst", bytes.NewReader(make([]byte, 1000)), 1000)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("put of a corrupted object: got %v, want a checksum mismatch", err)
	}
	if !strings.Contains(err.Error(), "etcd/n1/a.db.zst") || !strings.Contains(err.Error(), "not kept") {
		t.Errorf("error does not name the object and what happened to it: %v", err)
	}
	if _, err := s.Stat(ctx, "etcd/n1/a.db.zst"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the corrupted object is still there: stat says %v", err)
	}

	afterCommit = nil
	if _, err := s.Put(ctx, "etcd/n1/a.db.zst", bytes.NewReader(make([]byte, 1000)), 1000); err != nil {
		t.Fatalf("put after the fault: %v", err)
	}
}

// Create writes a key once: a second Create under it is ErrExists and
// leaves the first object's bytes; a wrapper that hides the conditional
// write gets the same answer through Stat.
func TestCreateWritesAKeyOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	type wrapped struct{ Store }
	for name, st := range map[string]Store{"file store": s.Sub("a"), "wrapper": wrapped{s.Sub("b")}} {
		if _, err := Create(ctx, st, "wal/x/system.json", strings.NewReader("first"), 5); err != nil {
			t.Fatalf("%s: first create: %v", name, err)
		}
		if _, err := Create(ctx, st, "wal/x/system.json", strings.NewReader("second"), 6); !errors.Is(err, ErrExists) {
			t.Errorf("%s: second create: %v, want ErrExists", name, err)
		}
		rc, err := st.Get(ctx, "wal/x/system.json")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "first" {
			t.Errorf("%s: the store holds %q, want the first writer's", name, got)
		}
	}
}
