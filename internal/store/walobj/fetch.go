package walobj

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// ErrNotFound means the store has no such file: for restore_command, the
// end of the archive.
var ErrNotFound = errors.New("not in the archive")

// Fetch writes the archived file name of source to dest, checked against
// the checksum it was shipped with and decrypted with identity when it was
// encrypted (nil: only clear objects can be fetched); dest appears
// (durably, whole) only when the check passed.
func Fetch(ctx context.Context, store objstore.Store, source, name, dest string, identity age.Identity) error {
	return FetchFile(ctx, store, source, name, dest, 0o600, identity)
}

// FetchFile is Fetch with dest's mode and options for its durable write.
func FetchFile(ctx context.Context, store objstore.Store, source, name, dest string, perm os.FileMode, identity age.Identity, opts ...durable.Option) error {
	if Classify(name) == Unknown {
		return fmt.Errorf("%q is not a WAL file name (want a segment such as 000000010000000000000003, a .history, .backup or .partial file)", name)
	}
	key := Key(source, name)
	rc, err := store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("%s of source %s: %w", name, source, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	// Decode checks the object's own checksum.
	f, err := durable.Create(dest, perm, append([]durable.Option{durable.WithHash(nil)}, opts...)...)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := Decode(f, rc, identity); err != nil {
		return fmt.Errorf("%s (%s): %w", name, key, err)
	}
	return f.Commit()
}

// Archived is what the store holds of a source.
type Archived struct {
	Files int
	// Newest segment and when it was stored.
	Newest   string
	NewestAt time.Time
	Gaps     []string
	// System is the source's system record; nil before the first
	// segment claimed it (or for a source shipped before records).
	System *System
}

// ListArchived reads a source's part of the store.
func ListArchived(ctx context.Context, store objstore.Store, source string) (Archived, error) {
	objs, err := store.List(ctx, "wal/"+source+"/")
	if err != nil {
		return Archived{}, err
	}
	var a Archived
	var names []string
	for _, o := range objs {
		name, ok := strings.CutSuffix(path.Base(o.Key), ObjectSuffix)
		if !ok || Classify(name) == Unknown {
			continue
		}
		a.Files++
		names = append(names, name)
		if Classify(name) == Segment && name > a.Newest {
			a.Newest, a.NewestAt = name, o.Modified
		}
	}
	sort.Strings(names)
	var segSize int64
	if sys, err := ReadSystem(ctx, store, source); err == nil {
		a.System, segSize = sys, sys.SegmentSize
	} else if !errors.Is(err, objstore.ErrNotFound) && !errors.Is(err, drstore.ErrBadRecord) {
		return Archived{}, err
	}
	a.Gaps = Gaps(names, segSize)
	return a, nil
}
