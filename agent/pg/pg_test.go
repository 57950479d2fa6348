package pg

import (
	"errors"
	"testing"
	"time"
)

func TestPickTakesTheNewestBaseBackupBeforeTheTarget(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	list := []*BaseBackup{
		{ID: "a", StopTime: t0},
		{ID: "b", StopTime: t0.Add(time.Hour)},
		{ID: "c", StopTime: t0.Add(2 * time.Hour)},
	}
	for _, tc := range []struct {
		target time.Time
		want   string
	}{
		{time.Time{}, "c"},
		{t0.Add(90 * time.Minute), "b"},
		{t0.Add(time.Hour), "b"},
		{t0, "a"},
	} {
		b, err := Pick(list, tc.target)
		if err != nil || b.ID != tc.want {
			t.Errorf("Pick(%v) = %v, %v; want %s", tc.target, b, err, tc.want)
		}
	}
	if _, err := Pick(list, t0.Add(-time.Minute)); !errors.Is(err, ErrNoBaseBackup) {
		t.Errorf("target before every base backup: %v", err)
	}
	if _, err := Pick(nil, time.Time{}); !errors.Is(err, ErrNoBaseBackup) {
		t.Errorf("no base backups: %v", err)
	}
}
