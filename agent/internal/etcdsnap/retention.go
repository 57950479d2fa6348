package etcdsnap

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/retention"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// PruneResult says what retention kept and removed.
type PruneResult struct {
	Kept, Removed []string
	// Deferred are snapshots due for removal that the store refused to
	// delete, each "NAME: why" (put/get-only credentials, Object Lock):
	// left whole, for a prune with the plugin's credentials or after the
	// lock's date.
	Deferred []string
}

// Prune applies retention to scheduled snapshots: in the store (all nodes'
// scheduled snapshots of the cluster) and to this node's local copies named
// <prefix>-<node>-<time>. On-demand snapshots and those of backup sets are
// never pruned; `rm` removes them.
func (s *Snapshotter) Prune(ctx context.Context, prefix string, r agentconfig.Retention, dryRun bool) (PruneResult, error) {
	return s.PruneIn(ctx, s.Store, prefix, r, dryRun)
}

// PruneIn is Prune with store in place of s.Store: the same store opened
// with the credentials a request brought.
func (s *Snapshotter) PruneIn(ctx context.Context, store objstore.Store, prefix string, r agentconfig.Retention, dryRun bool) (PruneResult, error) {
	var res PruneResult
	if store != nil {
		// An unusable record is never pruned: only what is listed is.
		all, _, err := dbsnap.ListStore(ctx, store)
		if err != nil {
			return res, err
		}
		byName := map[string]*dbsnap.Snapshot{}
		var items []retention.Dated
		for _, snap := range all {
			if snap.Scheduled {
				byName[snap.Name] = snap
				items = append(items, retention.Dated{Name: snap.Name, Time: snap.Created})
			}
		}
		keep, remove := retention.Apply(items, r)
		for _, k := range keep {
			res.Kept = append(res.Kept, k.Name)
		}
		for _, d := range remove {
			if !dryRun {
				err := dbsnap.DeleteFromStore(ctx, store, byName[d.Name])
				if objstore.Refused(err) {
					// The record goes first: a refusal leaves the
					// snapshot listed and whole, or (its record gone)
					// only its data, which nothing lists.
					res.Kept = append(res.Kept, d.Name)
					res.Deferred = append(res.Deferred, d.Name+": "+deferReason(err))
					continue
				}
				if err != nil {
					return res, err
				}
			}
			res.Removed = append(res.Removed, d.Name)
		}
	}
	local, err := s.localScheduled(prefix)
	if err != nil {
		return res, err
	}
	_, remove := retention.Apply(local, r)
	for _, d := range remove {
		if !dryRun {
			if _, err := s.DeleteLocal(d.Name); err != nil {
				return res, err
			}
		}
		if !slices.Contains(res.Removed, d.Name) && !slices.Contains(res.Kept, d.Name) {
			res.Removed = append(res.Removed, d.Name)
		}
	}
	return res, nil
}

// deferReason says why the store kept an object, for logs and replies.
func deferReason(err error) string {
	var locked *objstore.LockedError
	if errors.As(err, &locked) {
		return "under object lock until " + locked.Until.UTC().Format(time.RFC3339)
	}
	return "the node's store credentials may not delete; kubectl dr etcd snapshot prune removes it with the plugin's"
}

// localScheduled lists this node's local files named <prefix>-<node>-<unix>.
func (s *Snapshotter) localScheduled(prefix string) ([]retention.Dated, error) {
	entries, err := os.ReadDir(s.Layout.SnapshotsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	head := prefix + "-" + s.Node + "-"
	var out []retention.Dated
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), head)
		if !ok || e.IsDir() {
			continue
		}
		unix, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, retention.Dated{Name: e.Name(), Time: time.Unix(unix, 0)})
	}
	return out, nil
}
