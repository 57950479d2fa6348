package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
)

// ErrNotFound means the store has no such file: for restore_command, the
// end of the archive.
var ErrNotFound = errors.New("not in the archive")

// Fetch writes the archived file name of source to dest, checked against
// the checksum it was shipped with; dest appears (renamed from .part)
// only when the check passed.
func Fetch(ctx context.Context, store objstore.Store, source, name, dest string) error {
	if k := Classify(name); k == Unknown || k == Partial {
		return fmt.Errorf("%q is not a WAL file name (want a segment such as 000000010000000000000003, a .history or a .backup file)", name)
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
	part := dest + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := Decode(f, rc); err != nil {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("%s (%s): %w", name, key, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(part)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(part)
		return err
	}
	return os.Rename(part, filepath.Clean(dest))
}

// Archived is what the store holds of a source.
type Archived struct {
	Files int
	// Newest segment and when it was stored.
	Newest   string
	NewestAt time.Time
	Gaps     []string
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
	a.Gaps = Gaps(names)
	return a, nil
}
