package schedule

import (
	"context"
	"log/slog"
	"strings"

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

// Run ticks the jobs until ctx ends. A tick that comes while the job's
// previous run is still going is skipped, not queued.
func Run(ctx context.Context, log *slog.Logger, jobs ...Job) error {
	c := cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	for _, j := range jobs {
		if strings.EqualFold(j.Spec, "off") || j.Spec == "" {
			log.Info("schedule off", "job", j.Name)
			continue
		}
		sched, err := agentconfig.ParseSchedule(j.Spec)
		if err != nil {
			return err
		}
		c.Schedule(sched, cron.FuncJob(func() {
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
				return
			}
		}))
		log.Info("scheduled", "job", j.Name, "spec", j.Spec)
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done()
	return nil
}
