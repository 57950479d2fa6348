package walstage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

const segSize = 1 << 20

func seg(tli, no int) string {
	return walobj.SegmentName(strings.Repeat("0", 7)+string(rune('0'+tli)), uint64(no), segSize)
}

// archive puts segments 1..n of timeline 1 (encrypted to id) and one
// clear history file in a file:// store.
func archive(t *testing.T, n int, id *age.X25519Identity) (objstore.Store, map[string][]byte) {
	t.Helper()
	store, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := walobj.NewEncoder(id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	clear, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	put := func(e *walobj.Encoder, name string, data []byte) {
		var obj bytes.Buffer
		if err := e.Encode(&obj, data); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(context.Background(), walobj.Key("pg", name), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	for i := 1; i <= n; i++ {
		put(enc, seg(1, i), walobjtest.Segment(seg(1, i), 42, segSize, byte(i)))
	}
	put(clear, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	put(enc, seg(2, 3), walobjtest.Segment(seg(2, 3), 42, segSize, 0x22))
	return store, files
}

func identity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A stage holds, checked and decrypted, every file from the first segment
// on (later timelines too) and the history files, nothing before, byte for
// byte; its plan lists them in replay order; a complete stage is not
// marked active.
func TestStageHoldsWhatReplayNeeds(t *testing.T) {
	id := identity(t)
	store, files := archive(t, 6, id)
	dir := filepath.Join(t.TempDir(), ".main.wal-stage")
	var calls int
	s, err := Start(context.Background(), Options{Source: "pg", Store: store, Identity: id, Dir: dir, First: seg(1, 3), SegmentSize: segSize, Workers: 3,
		Progress: func(done, total int, _ int64) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{"00000002.history", seg(1, 3), seg(1, 4), seg(1, 5), seg(1, 6), seg(2, 3)}
	if s.Files != len(want) || calls != len(want) {
		t.Errorf("staged %d files (%d progress calls), want %d", s.Files, calls, len(want))
	}
	for _, n := range want {
		if got, err := os.ReadFile(filepath.Join(dir, n)); err != nil || !bytes.Equal(got, files[n]) {
			t.Errorf("%s in the stage differs from the file shipped (%v)", n, err)
		}
	}
	if plan, _ := os.ReadFile(filepath.Join(dir, planFile)); string(plan) != strings.Join(want, "\n")+"\n" {
		t.Errorf("plan %q, want %q", plan, want)
	}
	for _, n := range []string{seg(1, 2), seg(1, 7)} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s staged: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, activeFile)); !os.IsNotExist(err) {
		t.Errorf("a complete stage still says it is staging: %v", err)
	}
}

// A segment that does not decode (wrong key, corrupt) fails the stage
// naming it; nothing is left under its name.
func TestStageFailsNamingTheSegment(t *testing.T) {
	id := identity(t)
	store, _ := archive(t, 4, id)
	bad := seg(1, 3)
	if _, err := store.Put(context.Background(), walobj.Key("pg", bad), strings.NewReader("drwal3 00000000000001048576 0000000000000000\nnot age"), -1); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "stage")
	s, err := Start(context.Background(), Options{Source: "pg", Store: store, Identity: id, Dir: dir, First: seg(1, 1), SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	if !errors.Is(err, walobj.ErrCorrupt) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Wait = %v, want ErrCorrupt naming %s", err, bad)
	}
	if _, err := os.Stat(filepath.Join(dir, bad)); !os.IsNotExist(err) {
		t.Errorf("%s is in the stage: %v", bad, err)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, failedFile))
	if !strings.Contains(string(msg), bad) {
		t.Errorf("the stage's failure says %q", msg)
	}

	// Another key: refused as such.
	s, err = Start(context.Background(), Options{Source: "pg", Store: store, Identity: identity(t), Dir: dir, First: seg(1, 4), SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); !errors.Is(err, walobj.ErrKey) || !strings.Contains(err.Error(), seg(1, 4)) {
		t.Errorf("Wait with another key = %v, want ErrKey naming %s", err, seg(1, 4))
	}
}

// More WAL than the file system holds is refused before anything is
// fetched, saying how much is needed and where.
func TestStageRefusesWhenTheDiskIsTooSmall(t *testing.T) {
	id := identity(t)
	store, _ := archive(t, 2, id)
	dir := filepath.Join(t.TempDir(), "stage")
	_, err := Start(context.Background(), Options{Source: "pg", Store: store, Identity: id, Dir: dir, First: seg(1, 1), SegmentSize: segSize, Reserve: 1 << 62})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("Start = %v, want ErrNoSpace naming %s and the free space", err, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the refused stage left %s", dir)
	}
}
