package restoreplan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startHeldPlan is a plan held before its start whose stop and start
// commands leave marker files in dir.
func startHeldPlan(t *testing.T, dir, role string) (*Plan, *Runner, chan string) {
	t.Helper()
	p := &Plan{ID: "plan-s", Node: "n1", Flavor: "k3s", Role: role, Created: time.Now(), Member: Member{DataDir: filepath.Join(dir, "etcd")}}
	names := []string{StepStop, StepStart, StepHealthy}
	if role == RoleRejoin {
		names = []string{StepStop, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy}
	}
	for _, s := range names {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	if err := p.HoldStart(); err != nil {
		t.Fatal(err)
	}
	steps := make(chan string, 64)
	r := &Runner{
		Plans:     Plans{Dir: filepath.Join(dir, "plans")},
		Host:      Commands{StopCommand: []string{"touch", filepath.Join(dir, "stopped")}, StartCommand: []string{"touch", filepath.Join(dir, "started")}},
		Healthy:   func(context.Context) error { return nil },
		StartGate: &Gate{},
		OnStep:    func(_ *Plan, s Step) { steps <- s.Name + "=" + s.State },
	}
	return p, r, steps
}

func TestHoldStartPlacesTheStep(t *testing.T) {
	dir := t.TempDir()
	p, _, _ := startHeldPlan(t, dir, RoleReset)
	if got := strings.Join(p.StepNames(), " "); got != "stop wait-layers-restored start wait-healthy" {
		t.Errorf("reset server's held steps: %s", got)
	}
	if err := p.HoldStart(); err != nil || len(p.Steps) != 4 {
		t.Errorf("holding again: %v, %d steps", err, len(p.Steps))
	}
	p, _, _ = startHeldPlan(t, dir, RoleRejoin)
	if got := strings.Join(p.StepNames(), " "); got != "stop wait-layers-restored wait-reset-server move-db-aside start wait-healthy" {
		t.Errorf("rejoining server's held steps: %s", got)
	}
	p.Started = true
	p.Steps = p.Steps[:1]
	if err := p.HoldStart(); err == nil {
		t.Error("a started plan was held")
	}
}

// A plan held before its start does not start its member until the
// coordinator says every other layer is back.
func TestHoldStartWaitsForTheWordToStart(t *testing.T) {
	dir := t.TempDir()
	p, r, steps := startHeldPlan(t, dir, RoleReset)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), p) }()
	waitStep(t, steps, "wait-layers-restored=running")
	if exists(filepath.Join(dir, "started")) {
		t.Fatal("the member started before the word")
	}
	if start, _ := r.StartGate.ReleaseStart(p.ID, true, ""); !start {
		t.Fatal("ReleaseStart(start) not taken")
	}
	if start, _ := r.StartGate.ReleaseStart(p.ID, false, "too late"); !start {
		t.Error("a second word was taken over the first")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(dir, "started")) {
		t.Error("the member was not started after the word")
	}
}

// Told that a layer failed, the plan ends before its start: the member
// is not started, the step says why and the hint what to do.
func TestHoldStartEndsWithoutStartingWhenALayerFailed(t *testing.T) {
	dir := t.TempDir()
	p, r, steps := startHeldPlan(t, dir, RoleReset)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background(), p) }()
	waitStep(t, steps, "wait-layers-restored=running")
	r.StartGate.ReleaseStart(p.ID, false, "files of node n2 failed")
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "not started: files of node n2 failed") {
		t.Fatalf("Run: %v", err)
	}
	if exists(filepath.Join(dir, "started")) {
		t.Error("the member was started although a layer failed")
	}
	saved, _ := r.Plans.Load(p.ID)
	if !saved.Finished() || saved.RollBackReason != "" {
		t.Errorf("plan finished %v, rolled back %q", saved.Finished(), saved.RollBackReason)
	}
	if h := saved.Hint(); !strings.Contains(h, "k3s was not started, so no pod starts on volumes that are not back") {
		t.Errorf("hint %q", h)
	}
}

// Without a word within the limit (the plugin died, and with it the
// restores it drove) the member is not started.
func TestHoldStartWithoutAWordDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	p, r, _ := startHeldPlan(t, dir, RoleReset)
	r.StartHoldLimit = 50 * time.Millisecond
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "no word from the coordinator") {
		t.Fatalf("Run: %v", err)
	}
	if exists(filepath.Join(dir, "started")) {
		t.Error("the member was started without a word")
	}
}

// A rejoining server told that a layer failed says what to do: with its
// data dir there, move it aside and start k3s; on a new host, where there
// is none, just start k3s once the reset server runs.
func TestHoldStartRejoinHint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dataDir bool
		want    string
	}{
		{"data dir", true, "its data dir was not changed (the files kept with the snapshot are in place): once the other layers are restored and the reset server runs, move "},
		{"new host", false, "there is no data dir at "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p, r, steps := startHeldPlan(t, dir, RoleRejoin)
			if tc.dataDir {
				if err := os.MkdirAll(p.Member.DataDir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(context.Background(), p) }()
			waitStep(t, steps, "wait-layers-restored=running")
			r.StartGate.ReleaseStart(p.ID, false, "files of node n2 failed")
			if err := <-done; err == nil {
				t.Fatal("Run: no error, want not started")
			}
			if exists(filepath.Join(dir, "started")) {
				t.Error("the member was started although a layer failed")
			}
			saved, _ := r.Plans.Load(p.ID)
			h := saved.Hint()
			if !strings.Contains(h, tc.want) || !strings.Contains(h, "start k3s") {
				t.Errorf("hint %q, want %q and to start k3s", h, tc.want)
			}
		})
	}
}
