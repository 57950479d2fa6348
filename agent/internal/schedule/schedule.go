package schedule

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Job is one periodic task.
type Job struct {
	Name string
	// Spec is a cron expression: five fields, or six with seconds first.
	Spec string
	// ShouldRun is asked at each tick; a false answer skips the tick.
	ShouldRun func(ctx context.Context) (bool, error)
	Run       func(ctx context.Context) error
}

// Scheduler ticks jobs until it is stopped.
type Scheduler struct {
	c       *cron.Cron
	catchUp sync.WaitGroup
	stop    sync.Once
	stopped time.Time
}

// Start ticks the jobs. Every run gets ctx: ending ctx cancels the runs
// in progress (the agent is shutting down); Stop does not. A tick that
// comes while the job's previous run is still going is skipped, not
// queued.
//
// since is when the previous scheduler of this process stopped (a
// configuration reload), zero at the agent's start: a tick that was due
// between since and now runs at once, so a reload never loses one. After
// a restart missed ticks are not made up.
func Start(ctx context.Context, log *slog.Logger, since time.Time, jobs ...Job) (*Scheduler, error) {
	s := &Scheduler{c: cron.New()}
	skip := cron.NewChain(cron.SkipIfStillRunning(cron.DiscardLogger))
	now := time.Now()
	for _, j := range jobs {
		if strings.EqualFold(j.Spec, "off") || j.Spec == "" {
			log.Info("schedule off", "job", j.Name)
			continue
		}
		sched, err := agentconfig.ParseSchedule(j.Spec)
		if err != nil {
			return nil, err
		}
		run := skip.Then(cron.FuncJob(func() {
			ok, err := j.ShouldRun(ctx)
			if err != nil {
				log.Warn("scheduled job skipped", "job", j.Name, "err", err)
				return
			}
			if !ok {
				return
			}
			if err := j.Run(ctx); err != nil {
				log.Error("scheduled job failed", "job", j.Name, "err", err)
			}
		}))
		s.c.Schedule(sched, run)
		if due := sched.Next(since); !since.IsZero() && !due.After(now) {
			log.Info("running a tick due during the configuration reload", "job", j.Name, "due", due)
			s.catchUp.Add(1)
			go func() { defer s.catchUp.Done(); run.Run() }()
		}
		log.Info("scheduled", "job", j.Name, "spec", j.Spec)
	}
	s.c.Start()
	return s, nil
}

// Stop ends the ticks and waits for the runs in progress, without
// cancelling them: no run starts once Stop was called, and none is cut
// off by it. It returns when the ticks stopped, the since of the next
// scheduler. It is safe to call more than once.
func (s *Scheduler) Stop() time.Time {
	s.stop.Do(func() {
		s.stopped = time.Now()
		<-s.c.Stop().Done()
		s.catchUp.Wait()
	})
	return s.stopped
}
