package restoreplan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An agent restarted in the middle of the swap finishes it: the steps done
// before are not run again (the stop command here would fail if it were),
// the snapshot is not restored a second time, and each step is recorded.
func TestRunnerResumesAnInterruptedSwap(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "etcd")
	aside := dataDir + ".aside-plan-1"
	staging := dataDir + ".restoring"
	for _, d := range []string{aside, staging} {
		if err := os.MkdirAll(filepath.Join(d, "member"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(staging, "member", "restored"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	plans := Plans{Dir: filepath.Join(dir, "plans")}
	p := &Plan{
		ID: "plan-1", Node: "n1", Flavor: "etcd", Created: started, Started: true,
		SnapshotPath: filepath.Join(dir, "does-not-exist.db"),
		Member:       Member{Name: "m1", DataDir: dataDir, PeerURLs: []string{"http://127.0.0.1:1"}, InitialCluster: "m1=http://127.0.0.1:1"},
		Steps: []Step{
			{Name: StepVerify, State: Done, Started: &started, Finished: &started},
			{Name: StepStop, State: Done, Started: &started, Finished: &started},
			{Name: StepRestore, State: Running, Started: &started, Detail: aside},
			{Name: StepStart, State: Pending},
			{Name: StepHealthy, State: Pending},
		},
	}
	if err := plans.Save(p); err != nil {
		t.Fatal(err)
	}
	loaded, err := plans.Unfinished()
	if err != nil || loaded == nil || loaded.ID != "plan-1" {
		t.Fatalf("Unfinished = %v, %v; want plan-1", loaded, err)
	}
	marker := filepath.Join(dir, "started")
	var seen []string
	r := &Runner{
		Plans:   plans,
		Host:    Commands{StopCommand: []string{"false"}, StartCommand: []string{"touch", marker}},
		Healthy: func(context.Context) error { return nil },
		OnStep:  func(_ *Plan, s Step) { seen = append(seen, s.Name+"="+s.State) },
	}
	if err := r.Run(context.Background(), loaded); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "restored")); err != nil {
		t.Errorf("the restored data dir is not in place: %v", err)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("staging dir left: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("start command not run: %v", err)
	}
	want := "restore-data-dir=running restore-data-dir=done start=running start=done wait-healthy=running wait-healthy=done"
	if got := strings.Join(seen, " "); got != want {
		t.Errorf("steps seen:\n%s\nwant\n%s", got, want)
	}
	final, err := plans.Load("plan-1")
	if err != nil {
		t.Fatal(err)
	}
	if !final.Finished() || final.FailedStep() != nil {
		t.Errorf("plan not recorded as finished: %+v", final.Steps)
	}
	if again, _ := plans.Unfinished(); again != nil {
		t.Errorf("a finished plan still holds the node")
	}
}

// A failing step stops the plan, is recorded with its error, and the hint
// says where the previous data dir is.
func TestRunnerStopsAtAFailedStep(t *testing.T) {
	dir := t.TempDir()
	plans := Plans{Dir: dir}
	p := &Plan{ID: "plan-2", Created: time.Now(), Member: Member{DataDir: filepath.Join(dir, "etcd")}}
	for _, s := range []string{StepVerify, StepStop, StepRestore, StepStart, StepHealthy} {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	p.SnapshotPath = filepath.Join(dir, "missing.db")
	r := &Runner{Plans: plans, Host: Commands{StopCommand: []string{"true"}, StartCommand: []string{"true"}}, Healthy: func(context.Context) error { return nil }}
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), StepVerify) {
		t.Fatalf("Run with a missing snapshot: %v, want the verify step to fail", err)
	}
	saved, _ := plans.Load("plan-2")
	if f := saved.FailedStep(); f == nil || f.Name != StepVerify || saved.Steps[1].State != Pending {
		t.Errorf("recorded steps %+v: want verify failed and nothing stopped", saved.Steps)
	}
	if h := saved.Hint(); !strings.Contains(h, "nothing was stopped") {
		t.Errorf("hint %q", h)
	}
}
