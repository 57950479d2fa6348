package pgtarget

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"filippo.io/age"
	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// LoadArchive reads what the store holds of a source's WAL: the files'
// names, sizes and times, every history file's contents and the segment
// size from the source's system record. History files are decrypted with
// identity (nil: only clear ones can be read).
func LoadArchive(ctx context.Context, store objstore.Store, source string, identity age.Identity) (Archive, error) {
	objs, err := store.List(ctx, "wal/"+source+"/")
	if err != nil {
		return Archive{}, fmt.Errorf("list the WAL of %s: %w", source, err)
	}
	a := Archive{Histories: map[uint32][]walobj.Switch{}}
	for _, o := range objs {
		name, ok := strings.CutSuffix(path.Base(o.Key), walobj.ObjectSuffix)
		if !ok || walobj.Classify(name) == walobj.Unknown || walobj.Key(source, name) != o.Key {
			continue
		}
		a.Files = append(a.Files, File{Name: name, Size: o.Size, Stored: o.Modified})
		if walobj.Classify(name) != walobj.History {
			continue
		}
		tli, _ := strconv.ParseUint(name[:8], 16, 32)
		sw, err := walobj.ReadHistory(ctx, store, source, uint32(tli), identity)
		if err != nil {
			return Archive{}, err
		}
		a.Histories[uint32(tli)] = sw
	}
	switch sys, err := walobj.ReadSystem(ctx, store, source); {
	case err == nil:
		a.SegmentSize = sys.SegmentSize
	case !errors.Is(err, objstore.ErrNotFound) && !errors.Is(err, drstore.ErrBadRecord):
		return Archive{}, fmt.Errorf("WAL source %s: %w", source, err)
	}
	return a, nil
}
