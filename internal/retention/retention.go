package retention

import (
	"fmt"
	"sort"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Dated is anything retention can sort by time.
type Dated struct {
	Name string
	Time time.Time
}

// Apply splits items into those to keep and those to remove: the
// newest KeepLast, plus the newest item of each of the KeepHourly most recent
// hours that have one, and likewise days, ISO weeks and months (GFS, as
// restic's forget does). A zero policy keeps everything.
func Apply(items []Dated, r agentconfig.Retention) (keep, remove []Dated) {
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
