package restoreplan

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// barrierPlan is a held plan whose stop and start commands leave marker
// files in dir (stop fails when failStop).
func barrierPlan(t *testing.T, dir string, failStop bool) (*Plan, *Runner, chan string) {
	t.Helper()
	p := &Plan{ID: "plan-b", Node: "n1", Flavor: "etcd", Created: time.Now(), Member: Member{DataDir: filepath.Join(dir, "etcd")}}
	for _, s := range []string{StepStop, StepRestore, StepStart, StepHealthy} {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	if err := p.Hold(); err != nil {
		t.Fatal(err)
	}
	stop := []string{"touch", filepath.Join(dir, "stopped")}
	if failStop {
		stop = []string{"sh", "-c", "echo unit is masked >&2; exit 1"}
	}
	steps := make(chan string, 64)
	r := &Runner{
		Plans:   Plans{Dir: filepath.Join(dir, "plans")},
		Host:    Commands{StopCommand: stop, StartCommand: []string{"touch", filepath.Join(dir, "started")}},
		Healthy: func(context.Context) error { return nil },
		Running: func(context.Context) bool { return failStop },
		Gate:    &Gate{},
		OnStep:  func(_ *Plan, s Step) { steps <- s.Name + "=" + s.State },
	}
	return p, r, steps
}

func waitStep(t *testing.T, steps chan string, want string) {
	t.Helper()
	for s := range steps {
		if s == want {
			return
		}
	}
}

// A held plan stops its member and waits at the barrier: nothing past it
// runs until the coordinator says go on.
func TestBarrierWaitsForTheWordToGoOn(t *testing.T) {
	dir := t.TempDir()
	p, r, steps := barrierPlan(t, dir, false)
	if got := strings.Join(p.StepNames(), " "); got != "stop wait-all-stopped restore-data-dir start wait-healthy" {
		t.Fatalf("held plan's steps: %s", got)
	}
	r.Host = Commands{StopCommand: []string{"touch", filepath.Join(dir, "stopped")}, StartCommand: []string{"false"}}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), p) }()
	waitStep(t, steps, "wait-all-stopped=running")
	saved, err := r.Plans.Load(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Steps[2].State != Pending {
		t.Errorf("at the barrier, %s is %s, want pending", saved.Steps[2].Name, saved.Steps[2].State)
	}
	if rolledBack, _ := r.Gate.Continue(p.ID); rolledBack {
		t.Fatal("Continue reports a roll-back")
	}
	if r.Gate.RollBack(p.ID, "too late") {
		t.Error("RollBack after Continue was taken")
	}
	waitStep(t, steps, "wait-all-stopped=done")
	waitStep(t, steps, "restore-data-dir=running")
	// The swap fails (nothing was built here): past the barrier that is
	// not rolled back.
	err = <-done
	if err == nil || !strings.Contains(err.Error(), StepRestore) {
		t.Fatalf("Run: %v, want the restore step to fail", err)
	}
	saved, _ = r.Plans.Load(p.ID)
	if saved.RollBackReason != "" || strings.Contains(strings.Join(saved.StepNames(), " "), StepRollBack) {
		t.Errorf("a plan past its barrier was rolled back: %+v", saved)
	}
}

// Called off at the barrier, the plan starts its member again on the data
// dir it did not touch and says so.
func TestBarrierRollBackStartsTheMemberAgain(t *testing.T) {
	dir := t.TempDir()
	p, r, steps := barrierPlan(t, dir, false)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), p) }()
	waitStep(t, steps, "wait-all-stopped=running")
	if !r.Gate.RollBack(p.ID, "node n2: step stop failed") {
		t.Fatal("RollBack not taken")
	}
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "node n2: step stop failed") {
		t.Fatalf("Run: %v, want the roll-back's reason", err)
	}
	if !exists(filepath.Join(dir, "started")) {
		t.Error("the member was not started again")
	}
	saved, _ := r.Plans.Load(p.ID)
	got := strings.Join(saved.StepNames(), " ")
	if got != "stop wait-all-stopped restore-data-dir start wait-healthy roll-back" || saved.Steps[2].State != Pending || saved.Steps[5].State != Done {
		t.Errorf("recorded steps %+v", saved.Steps)
	}
	if !saved.Finished() {
		t.Error("a rolled back plan is not finished")
	}
	if h := saved.Hint(); !strings.Contains(h, "rolled back (node n2: step stop failed): started again on its data dir from before the restore") {
		t.Errorf("hint %q", h)
	}
}

// A stop that fails rolls the plan back; a member that still runs is not
// started again.
func TestBarrierFailedStopRollsBack(t *testing.T) {
	dir := t.TempDir()
	p, r, _ := barrierPlan(t, dir, true)
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "unit is masked") {
		t.Fatalf("Run: %v, want the stop's error", err)
	}
	if exists(filepath.Join(dir, "started")) {
		t.Error("a member that still runs was started")
	}
	saved, _ := r.Plans.Load(p.ID)
	if f := saved.FailedStep(); f == nil || f.Name != StepStop {
		t.Errorf("failed step %+v, want stop", f)
	}
	if h := saved.Hint(); !strings.Contains(h, "the member still ran on its data dir from before the restore") || strings.Contains(h, "nothing was changed") {
		t.Errorf("hint %q", h)
	}
}

// Called off before its member stopped, a plan stops nothing.
func TestBarrierRollBackBeforeTheStop(t *testing.T) {
	dir := t.TempDir()
	p, r, _ := barrierPlan(t, dir, false)
	r.Gate.RollBack(p.ID, "node n2: step verify-snapshot failed")
	if err := r.Run(context.Background(), p); err == nil {
		t.Fatal("Run of a plan called off: no error")
	}
	if exists(filepath.Join(dir, "stopped")) || exists(filepath.Join(dir, "started")) {
		t.Error("a plan called off before its stop stopped or started the member")
	}
	saved, _ := r.Plans.Load(p.ID)
	if !saved.Finished() || !strings.Contains(saved.Hint(), "nothing was stopped or changed here") {
		t.Errorf("finished %v, hint %q", saved.Finished(), saved.Hint())
	}
}

// No word at the barrier (the plugin died): the plan rolls back on its own.
func TestBarrierRollsBackWithoutAWord(t *testing.T) {
	dir := t.TempDir()
	p, r, _ := barrierPlan(t, dir, false)
	r.BarrierLimit = 100 * time.Millisecond
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "no word from the coordinator") {
		t.Fatalf("Run: %v", err)
	}
	if !exists(filepath.Join(dir, "started")) {
		t.Error("the member was not started again")
	}
}

// An agent killed in the middle of a roll-back finishes it when it starts
// again.
func TestBarrierResumesAnInterruptedRollBack(t *testing.T) {
	dir := t.TempDir()
	p, r, _ := barrierPlan(t, dir, false)
	now := time.Now()
	p.Started, p.RollBackReason = true, "node n2: step stop failed"
	p.Steps[0] = Step{Name: StepStop, State: Done, Started: &now, Finished: &now}
	p.Steps[1] = Step{Name: StepBarrier, State: Failed, Started: &now, Finished: &now, Error: "called off"}
	p.Steps = append(p.Steps, Step{Name: StepRollBack, State: Running, Started: &now})
	if err := r.Plans.Save(p); err != nil {
		t.Fatal(err)
	}
	loaded, err := r.Plans.Unfinished()
	if err != nil || loaded == nil {
		t.Fatalf("Unfinished = %v, %v: an interrupted roll-back must hold the node", loaded, err)
	}
	if err := r.Run(context.Background(), loaded); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !exists(filepath.Join(dir, "started")) {
		t.Error("the member was not started again")
	}
	saved, _ := r.Plans.Load(p.ID)
	if n := len(saved.Steps); n != 6 || saved.Steps[5].State != Done || !saved.Finished() {
		t.Errorf("recorded steps %+v", saved.Steps)
	}
}

// A single server's plan (no barrier) whose stop command stopped the
// member and then failed (as a stop run twice at once can) starts the
// member again: its data dir was not touched, and the hint does not say
// "nothing was changed" of a member left down.
func TestFailedStopOfASingleServerStartsItAgain(t *testing.T) {
	dir := t.TempDir()
	stopped := filepath.Join(dir, "stopped")
	p := &Plan{ID: "plan-s", Node: "n1", Flavor: "etcd", Created: time.Now(), Member: Member{DataDir: filepath.Join(dir, "etcd")}}
	for _, s := range []string{StepStop, StepRestore, StepStart, StepHealthy} {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	r := &Runner{
		Plans:   Plans{Dir: filepath.Join(dir, "plans")},
		Host:    Commands{StopCommand: []string{"sh", "-c", "touch " + stopped + "; echo pid file gone >&2; exit 1"}, StartCommand: []string{"touch", filepath.Join(dir, "started")}},
		Healthy: func(context.Context) error { return nil },
		// The member answers unless the stop went through.
		Running: func(context.Context) bool { return !exists(stopped) },
	}
	if err := r.Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), "pid file gone") {
		t.Fatalf("Run: %v, want the stop's error", err)
	}
	if !exists(filepath.Join(dir, "started")) {
		t.Error("the member the failed stop left down was not started again")
	}
	saved, _ := r.Plans.Load(p.ID)
	if h := saved.Hint(); !strings.Contains(h, "started again on its data dir from before the restore") || strings.Contains(h, "nothing was changed") {
		t.Errorf("hint %q", h)
	}
}
