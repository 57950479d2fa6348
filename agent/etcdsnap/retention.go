package etcdsnap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/config"
)

// Dated is anything retention can sort by time.
type Dated struct {
	Name string
	Time time.Time
}

// ApplyRetention splits items into those to keep and those to remove: the
// newest KeepLast, plus the newest item of each of the KeepHourly most recent
// hours that have one, and likewise days, ISO weeks and months (GFS, as
// restic's forget does). A zero policy keeps everything.
func ApplyRetention(items []Dated, r config.Retention) (keep, remove []Dated) {
	if r.IsZero() {
		return items, nil
	}
	sorted := append([]Dated(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Time.After(sorted[j].Time) })
	kept := make([]bool, len(sorted))
	for i := 0; i < r.KeepLast && i < len(sorted); i++ {
		kept[i] = true
	}
	buckets := []struct {
		n   int
		key func(time.Time) string
	}{
		{r.KeepHourly, func(t time.Time) string { return t.Format("2006-01-02T15") }},
		{r.KeepDaily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{r.KeepWeekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{r.KeepMonthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		seen := map[string]bool{}
		for i, it := range sorted {
			if len(seen) >= b.n {
				break
			}
			k := b.key(it.Time.UTC())
			if !seen[k] {
				seen[k] = true
				kept[i] = true
			}
		}
	}
	for i, it := range sorted {
		if kept[i] {
			keep = append(keep, it)
		} else {
			remove = append(remove, it)
		}
	}
	return keep, remove
}

// PruneResult says what retention kept and removed.
type PruneResult struct {
	Kept, Removed []string
}

// Prune applies retention to scheduled snapshots: in the store (all nodes'
// scheduled snapshots of the cluster) and to this node's local copies named
// <prefix>-<node>-<time>. On-demand snapshots and those of backup sets are
// never pruned; `rm` removes them.
func (s *Snapshotter) Prune(ctx context.Context, prefix string, r config.Retention, dryRun bool) (PruneResult, error) {
	var res PruneResult
	if s.Store != nil {
		all, err := ListStore(ctx, s.Store)
		if err != nil {
			return res, err
		}
		byName := map[string]*Snapshot{}
		var items []Dated
		for _, snap := range all {
			if snap.Scheduled {
				byName[snap.Name] = snap
				items = append(items, Dated{Name: snap.Name, Time: snap.Created})
			}
		}
		keep, remove := ApplyRetention(items, r)
		for _, k := range keep {
			res.Kept = append(res.Kept, k.Name)
		}
		for _, d := range remove {
			if !dryRun {
				if err := DeleteFromStore(ctx, s.Store, byName[d.Name]); err != nil {
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
	_, remove := ApplyRetention(local, r)
	for _, d := range remove {
		if !dryRun {
			if _, err := s.DeleteLocal(d.Name); err != nil {
				return res, err
			}
		}
		if !slices.Contains(res.Removed, d.Name) {
			res.Removed = append(res.Removed, d.Name)
		}
	}
	return res, nil
}

// localScheduled lists this node's local files named <prefix>-<node>-<unix>.
func (s *Snapshotter) localScheduled(prefix string) ([]Dated, error) {
	entries, err := os.ReadDir(s.Layout.SnapshotsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	head := prefix + "-" + s.Node + "-"
	var out []Dated
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), head)
		if !ok || e.IsDir() {
			continue
		}
		unix, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Dated{Name: e.Name(), Time: time.Unix(unix, 0)})
	}
	return out, nil
}
