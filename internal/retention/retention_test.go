package retention

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

func TestApply(t *testing.T) {
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	// Every 6 hours for 10 days, newest first: s0 = base, s1 = base-6h, ...
	var items []Dated
	for i := 0; i < 40; i++ {
		items = append(items, Dated{Name: name(i), Time: base.Add(-time.Duration(i) * 6 * time.Hour)})
	}
	names := func(ds []Dated) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	tests := []struct {
		name string
		r    agentconfig.Retention
		want []string
	}{
		{"keep last 3", agentconfig.Retention{KeepLast: 3}, []string{"s0", "s1", "s2"}},
		// Days: 20th (s0: 12:00, s1: 06:00, s2: 00:00), 19th (s3 18:00 newest), 18th (s7).
		{"keep 3 daily", agentconfig.Retention{KeepDaily: 3}, []string{"s0", "s3", "s7"}},
		{"last 1 plus 2 daily overlap", agentconfig.Retention{KeepLast: 1, KeepDaily: 2}, []string{"s0", "s3"}},
		// 2026-11-20 is a Friday: week 47 runs back to Monday the 16th
		// 00:00 (s18); week 46's newest is Sunday the 15th 18:00 (s19).
		{"keep 2 weekly", agentconfig.Retention{KeepWeekly: 2}, []string{"s0", "s19"}},
		{"keep 1 monthly", agentconfig.Retention{KeepMonthly: 1}, []string{"s0"}},
		{"zero keeps all", agentconfig.Retention{}, names(items)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, remove := Apply(items, tt.r)
			if diff := cmp.Diff(tt.want, names(keep)); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if len(keep)+len(remove) != len(items) {
				t.Errorf("kept %d + removed %d != %d", len(keep), len(remove), len(items))
			}
		})
	}
}

func name(i int) string { return "s" + strconv.Itoa(i) }
