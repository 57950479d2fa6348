package backupverify

import (
	"context"
	"fmt"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/units"
)

// Result says what was checked and what is wrong; a set with no problems
// is restorable as far as reading it back can tell.
type Result struct {
	Checked  []string
	Problems []string
}

// OK reports whether no problem was found.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// Checker verifies sets in one store.
type Checker struct {
	Store objstore.Store
	// Files opens the node's files engine; it is only asked for when the
	// set has restic snapshots (a node without restic still checks the
	// etcd part).
	Files func() (*files.Engine, error)
}

// Verify checks the set. Problems found are in the result; an error means
// the check itself could not run (the store or restic unreachable).
// progress is told each phase.
func (c Checker) Verify(ctx context.Context, set *backupset.Set, readDataSubset string, progress func(phase, msg string)) (*Result, error) {
	res := &Result{}
	if set.Etcd != nil && set.Etcd.Snapshot != "" {
		progress("etcd", "reading etcd snapshot "+set.Etcd.Snapshot+" back from the store")
		list, _, err := dbsnap.ListStore(ctx, c.Store)
		if err != nil {
			return nil, err
		}
		snap, ok := dbsnap.Find(list, set.Etcd.Snapshot)
		switch {
		case !ok:
			res.Problems = append(res.Problems, fmt.Sprintf("etcd snapshot %s is not in the store", set.Etcd.Snapshot))
		default:
			if err := dbsnap.VerifyStored(ctx, c.Store, snap); err != nil {
				res.Problems = append(res.Problems, err.Error())
			} else {
				res.Checked = append(res.Checked, fmt.Sprintf("etcd snapshot %s: %s stored, sha256 matches", snap.Name, units.HumanBytes(snap.StoredSize)))
			}
		}
	}
	var want int
	for _, p := range set.Files {
		if p.SnapshotID != "" {
			want++
		}
	}
	if want == 0 {
		return res, nil
	}
	e, err := c.Files()
	if err != nil {
		return nil, err
	}
	progress("restic", "restic check "+readDataSubset)
	snaps, err := e.Repo.Snapshots(ctx, files.TagSet+set.ID)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, sn := range snaps {
		have[sn.ID] = true
	}
	for _, p := range set.Files {
		if p.SnapshotID != "" && !have[p.SnapshotID] {
			res.Problems = append(res.Problems, fmt.Sprintf("restic snapshot %s of node %s is missing from the repository", short(p.SnapshotID), p.Node))
		}
	}
	check, err := e.Check(ctx, readDataSubset)
	if err != nil {
		return nil, err
	}
	if check.Errors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("restic check found %d error(s)", check.Errors))
		res.Problems = append(res.Problems, check.Messages...)
	} else {
		what := "structure"
		if readDataSubset != "" {
			what = "structure and " + readDataSubset + " of the data read back"
		}
		res.Checked = append(res.Checked, fmt.Sprintf("restic repository: %s OK; %d snapshot(s) of the set present", what, len(snaps)))
	}
	return res, nil
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
