package schedule

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// events records what happened, in order.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) { e.mu.Lock(); e.list = append(e.list, s); e.mu.Unlock() }

func (e *events) get() []string { e.mu.Lock(); defer e.mu.Unlock(); return slices.Clone(e.list) }

func always(context.Context) (bool, error) { return true, nil }

// A reload stops the old scheduler while a run is in progress: the run
// is not cancelled, Stop returns only once it ended, and no run starts
// after Stop. (synctest.Wait returns once every goroutine is blocked:
// what was going to happen has happened.)
func TestStopWaitsForTheRunInProgressWithoutCancellingIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		release := make(chan struct{})
		runs := 0
		s, err := Start(context.Background(), slog.New(slog.DiscardHandler), time.Time{}, Job{
			Name: "snapshot", Spec: "* * * * * *", ShouldRun: always,
			Run: func(ctx context.Context) error {
				runs++
				if runs > 1 {
					ev.add("a run started after Stop")
					return nil
				}
				ev.add("run started")
				select {
				case <-ctx.Done():
					ev.add("run cancelled")
				case <-release:
					ev.add("run finished")
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := ev.get(); !slices.Equal(got, []string{"run started"}) {
			t.Fatalf("before Stop: %v, want one run started", got)
		}
		stopped := make(chan struct{})
		go func() { s.Stop(); ev.add("stop returned"); close(stopped) }()
		synctest.Wait()
		if got := ev.get(); !slices.Equal(got, []string{"run started"}) {
			t.Fatalf("Stop with a run in progress: %v, want the run still going and Stop waiting for it", got)
		}
		close(release)
		<-stopped
		time.Sleep(5 * time.Second)
		synctest.Wait()
		want := []string{"run started", "run finished", "stop returned"}
		if got := ev.get(); !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

// The tick that fell due while a reload swapped schedulers runs as soon
// as the new scheduler starts; one that did not is not made up, and
// neither is anything after a restart (no since).
func TestTheTickDueDuringAReloadRunsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The next 00:00:00 on the bubble's clock, local time as cron's.
		y, m, d := time.Now().Date()
		midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.Local)
		time.Sleep(time.Until(midnight.Add(200 * time.Millisecond)))
		var ev events
		job := func(name string) Job {
			return Job{Name: name, Spec: "0 0 * * *", ShouldRun: always, Run: func(ctx context.Context) error {
				ev.add(name)
				return nil
			}}
		}
		log := slog.New(slog.DiscardHandler)
		// Stopped at 23:59:59.9, the next one starts at 00:00:00.2: the
		// midnight tick fell in between.
		s1, err := Start(context.Background(), log, midnight.Add(-100*time.Millisecond), job("after a reload"))
		if err != nil {
			t.Fatal(err)
		}
		// Stopped after midnight: nothing was missed.
		s2, err := Start(context.Background(), log, midnight.Add(100*time.Millisecond), job("nothing missed"))
		if err != nil {
			t.Fatal(err)
		}
		s3, err := Start(context.Background(), log, time.Time{}, job("after a restart"))
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, s := range []*Scheduler{s1, s2, s3} {
			s.Stop()
		}
		if got := ev.get(); !slices.Equal(got, []string{"after a reload"}) {
			t.Errorf("ran %v, want only the scheduler started after a reload to run the missed tick", got)
		}
	})
}
