package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// backedUp is a data dir backed up as set s1, then changed: change.txt
// edited, sub/gone.txt removed; keep.txt is as backed up.
func backedUp(t *testing.T) (*Engine, string) {
	t.Helper()
	f := newFixture(t)
	data := t.TempDir()
	write(t, filepath.Join(data, "keep.txt"), "keep\n")
	write(t, filepath.Join(data, "change.txt"), "original\n")
	write(t, filepath.Join(data, "sub", "gone.txt"), "gone\n")
	e := f.engine(t, "n1", data)
	if _, err := e.Backup(context.Background(), BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "change.txt"), "edited\n")
	os.Remove(filepath.Join(data, "sub", "gone.txt"))
	return e, data
}

func previewDigest(t *testing.T, e *Engine) string {
	t.Helper()
	pv, err := e.Preview(context.Background(), Target{Set: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	return pv.Digest
}

// The same node state gives the same digest; anything the restore acts on
// touched in between gives another; files it leaves alone do not count.
func TestPreviewDigestFollowsWhatTheRestoreActsOn(t *testing.T) {
	t.Parallel()
	e, data := backedUp(t)
	first := previewDigest(t, e)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(first) {
		t.Fatalf("digest %q: want 64 hex digits", first)
	}
	if again := previewDigest(t, e); again != first {
		t.Fatalf("the same files gave digest %s, then %s", first, again)
	}

	write(t, filepath.Join(data, "extra.txt"), "not in the backup\n")
	if d := previewDigest(t, e); d != first {
		t.Errorf("a file the restore leaves alone (not in the backup) changed the digest")
	}

	for _, tc := range []struct {
		name   string
		change func()
	}{
		{"a replaced file touched", func() {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(data, "change.txt"), later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{"a replaced file's mode", func() { os.Chmod(filepath.Join(data, "change.txt"), 0o600) }},
		{"a file appearing where one is created", func() { write(t, filepath.Join(data, "sub", "gone.txt"), "mine\n") }},
		{"an unchanged file edited", func() { write(t, filepath.Join(data, "keep.txt"), "kept, edited\n") }},
		{"an unchanged file removed", func() { os.Remove(filepath.Join(data, "keep.txt")) }},
	} {
		before := first
		tc.change()
		first = previewDigest(t, e)
		if first == before {
			t.Errorf("%s: the digest stayed %s", tc.name, before)
		}
	}
}

// A restore given a preview's digest refuses when the files changed since,
// names them, and moves or writes nothing; with the new preview's digest
// it restores, moving the node's newer files aside.
func TestRestoreRefusesFilesChangedSinceThePreview(t *testing.T) {
	t.Parallel()
	e, data := backedUp(t)
	ctx := context.Background()
	confirmed := previewDigest(t, e)

	write(t, filepath.Join(data, "change.txt"), "edited again\n")
	write(t, filepath.Join(data, "sub", "gone.txt"), "mine\n")
	_, err := e.Restore(ctx, Target{Set: "s1"}, confirmed, nil)
	if !errors.Is(err, ErrPreviewChanged) {
		t.Fatalf("err = %v, want ErrPreviewChanged", err)
	}
	for _, want := range []string{
		"changed since the preview on node n1: ",
		filepath.Join(data, "change.txt") + " (modified)",
		filepath.Join(data, "sub", "gone.txt") + " (new)",
		"nothing was moved or restored: run the restore again to see the new preview",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if got := read(t, filepath.Join(data, "change.txt")); got != "edited again\n" {
		t.Errorf("change.txt = %q after the refused restore", got)
	}
	if got := read(t, filepath.Join(data, "sub", "gone.txt")); got != "mine\n" {
		t.Errorf("gone.txt = %q after the refused restore", got)
	}
	if entries, err := os.ReadDir(e.AsideDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused restore wrote into %s: %v %v", e.AsideDir, entries, err)
	}

	res, err := e.Restore(ctx, Target{Set: "s1"}, previewDigest(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(data, "change.txt"):                    "original\n",
		filepath.Join(data, "sub", "gone.txt"):               "gone\n",
		filepath.Join(res.AsideDir, data, "change.txt"):      "edited again\n",
		filepath.Join(res.AsideDir, data, "sub", "gone.txt"): "mine\n",
	} {
		if got := read(t, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
}

// An agent that no longer holds the confirmed preview still refuses, and
// says it cannot name the files.
func TestRestoreRefusesADigestItDoesNotKnow(t *testing.T) {
	t.Parallel()
	e, data := backedUp(t)
	_, err := e.Restore(context.Background(), Target{Set: "s1"}, strings.Repeat("0", 64), nil)
	if !errors.Is(err, ErrPreviewChanged) || !strings.Contains(err.Error(), "no longer holds that preview") {
		t.Fatalf("err = %v", err)
	}
	if got := read(t, filepath.Join(data, "change.txt")); got != "edited\n" {
		t.Errorf("change.txt = %q after the refused restore", got)
	}
}

// A file that appears where the restore creates one, after the restore's
// own look at the node, is moved aside, not overwritten.
func TestRestoreMovesAsideAFileThatAppearedWhereItCreatesOne(t *testing.T) {
	t.Parallel()
	e, data := backedUp(t)
	gone := filepath.Join(data, "sub", "gone.txt")
	// restic, except that right after the dry run (the restore's look at
	// the node) a file appears at gone.txt.
	script := fmt.Sprintf("#!/bin/sh\ncase \" $* \" in *\" --dry-run \"*) %s \"$@\"; rc=$?; echo appeared > %q; exit $rc;; esac\nexec %s \"$@\"\n", resticBinary, gone, resticBinary)
	bin := filepath.Join(t.TempDir(), "restic")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Repo.Binary = bin
	res, err := e.Restore(context.Background(), Target{Set: "s1"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, gone); got != "gone\n" {
		t.Errorf("gone.txt = %q after the restore", got)
	}
	if res.AsideDir == "" {
		t.Fatalf("nothing was moved aside; the file that appeared was overwritten")
	}
	if got := read(t, filepath.Join(res.AsideDir, gone)); got != "appeared\n" {
		t.Errorf("the file that appeared is not kept aside: %q", got)
	}
}
