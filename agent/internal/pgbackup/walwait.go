package pgbackup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// walRange is the WAL a base backup needs: every segment from first to
// last, of database system sysid with segments of segSize bytes.
type walRange struct {
	source      string
	sysid       uint64
	segSize     int64
	first, last string
	// refusal, if set, says why this node's shipper refused a file ("" if
	// it did not): a refused segment will not arrive by waiting.
	refusal func(name string) string
}

// waitForWAL waits until every segment of r is in the store and verified
// (decoded against its checksum, its first page of r's database and
// position), up to timeout; segments still being retried by the shipper
// arrive meanwhile. A segment that is in the store but wrong, or refused
// by the shipper, ends the wait at once: waiting cannot mend it.
func waitForWAL(ctx context.Context, store objstore.Store, r walRange, timeout time.Duration) error {
	want, err := walobj.SegmentRange(r.first, r.last, r.segSize)
	if err != nil {
		return fmt.Errorf("the base backup's WAL: %w", err)
	}
	verified := map[string]bool{}
	deadline := time.Now().Add(timeout)
	prefix := "wal/" + r.source + "/" + walobj.Timeline(r.first) + "/"
	for {
		objs, err := store.List(ctx, prefix)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		present := map[string]bool{}
		for _, o := range objs {
			if name, ok := strings.CutSuffix(path.Base(o.Key), walobj.ObjectSuffix); ok {
				present[name] = true
			}
		}
		var missing []string
		why := ""
		if err != nil {
			why = fmt.Sprintf("; listing the store failed: %v", err)
		}
		for _, n := range want {
			if verified[n] {
				continue
			}
			if r.refusal != nil {
				if msg := r.refusal(n); msg != "" {
					return fmt.Errorf("WAL segment %s, which the base backup needs, was refused by the shipper: %s", n, msg)
				}
			}
			if !present[n] {
				missing = append(missing, n)
				continue
			}
			err := verifySegment(ctx, store, r, n)
			if errors.Is(err, walobj.ErrCorrupt) || errors.Is(err, walobj.ErrNotWAL) {
				return fmt.Errorf("WAL segment %s, which the base backup needs, is not usable in the store: %w", n, err)
			}
			if err != nil {
				missing, why = append(missing, n), fmt.Sprintf("; reading %s failed: %v", n, err)
				continue
			}
			verified[n] = true
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL %s (of the %s to %s the base backup needs) not in the store after %s%s: is the source shipping? (kubectl dr wal status %s)",
				summarize(missing), r.first, r.last, timeout.Round(time.Second), why, r.source)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// verifySegment reads a segment back whole: its checksum, and that its
// first page is r's database at the name's position. An encrypted one
// cannot be read on a node (it holds no key): its header must say it holds
// a segment's size; its shipper checked its page before encrypting it.
func verifySegment(ctx context.Context, store objstore.Store, r walRange, name string) error {
	rc, err := store.Get(ctx, walobj.Key(r.source, name))
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	peek, _ := br.Peek(64)
	if size, ok := walobj.EncryptedSize(walobj.ObjectHeader(peek)); ok {
		if size != r.segSize {
			return fmt.Errorf("%w: %s holds %d bytes, the database's segments are %d", walobj.ErrNotWAL, name, size, r.segSize)
		}
		return nil
	}
	var first firstBytes
	if _, err := walobj.Decode(&first, br, nil); err != nil {
		return err
	}
	h, err := walobj.ParsePageHeader(first.b)
	if err != nil {
		return err
	}
	if err := h.CheckName(name); err != nil {
		return err
	}
	if h.SystemID != r.sysid || h.SegmentSize != r.segSize {
		return fmt.Errorf("%w: %s is of database system %d with %d-byte segments, the database backed up is %d with %d-byte ones",
			walobj.ErrNotWAL, name, h.SystemID, h.SegmentSize, r.sysid, r.segSize)
	}
	return nil
}

// firstBytes keeps the start of what is written to it and discards the
// rest.
type firstBytes struct{ b []byte }

func (f *firstBytes) Write(p []byte) (int, error) {
	if n := walobj.LongPageHeaderSize - len(f.b); n > 0 {
		f.b = append(f.b, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

var _ io.Writer = (*firstBytes)(nil)

// summarize names the first few of names.
func summarize(names []string) string {
	if len(names) <= 3 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
}
