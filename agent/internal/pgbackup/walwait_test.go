package pgbackup

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj/walobjtest"
)

const (
	ourSystem   uint64 = 7299000000000000001
	otherSystem uint64 = 7301000000000000002
)

// listHook runs before each List of the store (after the first n).
type listHook struct {
	objstore.Store
	mu     sync.Mutex
	lists  int
	before func(n int)
}

func (l *listHook) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	l.mu.Lock()
	l.lists++
	n := l.lists
	l.mu.Unlock()
	if l.before != nil {
		l.before(n)
	}
	return l.Store.List(ctx, prefix)
}

func newWALStore(t *testing.T) (objstore.Store, func(name string, sysid uint64, segSize int64)) {
	t.Helper()
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := walobj.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, sysid uint64, segSize int64) {
		t.Helper()
		var obj bytes.Buffer
		if err := enc.Encode(&obj, walobjtest.Segment(name, sysid, segSize, 7)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(context.Background(), walobj.Key("pg", name), &obj, int64(obj.Len())); err != nil {
			t.Fatal(err)
		}
	}
	return s, put
}

// A later segment in the store while an earlier one is still retrying:
// the wait goes on until the earlier one is there too, and only then
// succeeds.
func TestWaitForWALWaitsForEverySegmentOfTheRangeOnAFileStore(t *testing.T) {
	s, put := newWALStore(t)
	put("000000010000000000000003", ourSystem, 1<<20)
	put("000000010000000000000005", ourSystem, 1<<20)
	var arrived bool
	hook := &listHook{Store: s, before: func(n int) {
		if n == 3 { // the retry lands while the wait polls
			put("000000010000000000000004", ourSystem, 1<<20)
			arrived = true
		}
	}}
	r := walRange{source: "pg", sysid: ourSystem, segSize: 1 << 20, first: "000000010000000000000003", last: "000000010000000000000005"}
	if err := waitForWAL(context.Background(), hook, r, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !arrived || hook.lists < 3 {
		t.Errorf("the wait ended after %d listings, before segment 4 arrived", hook.lists)
	}
}

// A segment that never arrives: the wait ends with an error naming it.
func TestWaitForWALNamesTheMissingSegmentOnAFileStore(t *testing.T) {
	s, put := newWALStore(t)
	put("000000010000000000000003", ourSystem, 1<<20)
	put("000000010000000000000005", ourSystem, 1<<20)
	r := walRange{source: "pg", sysid: ourSystem, segSize: 1 << 20, first: "000000010000000000000003", last: "000000010000000000000005"}
	err := waitForWAL(context.Background(), s, r, time.Nanosecond)
	if err == nil || !strings.Contains(err.Error(), "WAL 000000010000000000000004 (of the 000000010000000000000003 to 000000010000000000000005 the base backup needs) not in the store") {
		t.Errorf("waitForWAL: %v", err)
	}
}

// In the store but not usable, or refused by the shipper: no waiting,
// the error says what is wrong.
func TestWaitForWALRefusesForeignCorruptAndRefusedSegmentsOnAFileStore(t *testing.T) {
	s, put := newWALStore(t)
	put("000000010000000000000003", ourSystem, 1<<20)
	put("000000010000000000000004", otherSystem, 1<<20)
	r := walRange{source: "pg", sysid: ourSystem, segSize: 1 << 20, first: "000000010000000000000003", last: "000000010000000000000004"}
	err := waitForWAL(context.Background(), s, r, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "000000010000000000000004 is of database system 7301000000000000002") {
		t.Errorf("foreign segment: %v", err)
	}

	if _, err := s.Put(context.Background(), walobj.Key("pg", "000000010000000000000004"), strings.NewReader("drwal2 00000000000000000001 0000000000000000\nx"), -1); err != nil {
		t.Fatal(err)
	}
	err = waitForWAL(context.Background(), s, r, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt segment: %v", err)
	}

	r.last = "000000010000000000000006"
	r.refusal = func(name string) string {
		if name == "000000010000000000000005" {
			return "segment 000000010000000000000005 is from database system 7301"
		}
		return ""
	}
	put("000000010000000000000004", ourSystem, 1<<20)
	err = waitForWAL(context.Background(), s, r, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "was refused by the shipper: segment 000000010000000000000005 is from database system 7301") {
		t.Errorf("refused segment: %v", err)
	}
}

// 64 MB segments: the range crosses a log id after ...3F, as the
// database numbers it.
func TestWaitForWALWith64MBSegmentsOnAFileStore(t *testing.T) {
	s, put := newWALStore(t)
	for _, n := range []string{"00000001000000000000003F", "000000010000000100000000"} {
		put(n, ourSystem, 64<<20)
	}
	r := walRange{source: "pg", sysid: ourSystem, segSize: 64 << 20, first: "00000001000000000000003F", last: "000000010000000100000000"}
	if err := waitForWAL(context.Background(), s, r, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
}
