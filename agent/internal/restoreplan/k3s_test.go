package restoreplan

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func k3sPlan(t *testing.T, dir string, steps []string) *Plan {
	t.Helper()
	etcdDir := filepath.Join(dir, "server", "db", "etcd")
	if err := os.MkdirAll(filepath.Join(etcdDir, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Plan{ID: "plan-k3s", Node: "n1", Flavor: "k3s", Created: time.Now(), K3sDataDir: dir, Member: Member{DataDir: etcdDir}}
	for _, s := range steps {
		p.Steps = append(p.Steps, Step{Name: s, State: Pending})
	}
	return p
}

// A rejoining server moves server/db/etcd aside only once the reset server
// is healthy, records where, and a second run does not move anything again.
func TestK3sRejoinMovesTheDataDirAsideOnce(t *testing.T) {
	dir := t.TempDir()
	p := k3sPlan(t, dir, []string{StepStop, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy})
	p.ResetClientURLs = []string{"https://10.0.0.1:2379"}
	var asked []string
	r := &Runner{
		Plans:   Plans{Dir: filepath.Join(dir, "plans")},
		Host:    Commands{StopCommand: []string{"true"}, StartCommand: []string{"true"}},
		Healthy: func(context.Context) error { return nil },
		ResetHealthy: func(_ context.Context, urls []string) error {
			asked = append(asked, urls...)
			return nil
		},
	}
	if err := r.Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, ",") != "https://10.0.0.1:2379" {
		t.Errorf("reset server asked at %v", asked)
	}
	aside := p.Steps[2].Detail
	if aside != p.Member.DataDir+".aside-plan-k3s" {
		t.Fatalf("recorded aside %q", aside)
	}
	if _, err := os.Stat(filepath.Join(aside, "member")); err != nil {
		t.Errorf("the data dir is not aside: %v", err)
	}
	if _, err := os.Stat(p.Member.DataDir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", p.Member.DataDir, err)
	}
	// k3s made a new data dir when it rejoined. A second run of the
	// finished plan moves nothing: the new dir and the one aside stay.
	marker := filepath.Join(p.Member.DataDir, "member", "joined")
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte("k3s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background(), p); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "k3s" {
		t.Errorf("second run touched k3s's new data dir: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "joined")); err == nil {
		t.Errorf("second run moved the new data dir over the one aside")
	}
	// The agent died during the move, after the rename, before recording
	// it: the step runs again and finds the move done.
	os.RemoveAll(p.Member.DataDir)
	p.Steps[2].State, p.Steps[3].State, p.Steps[4].State = Running, Pending, Pending
	if err := r.Run(context.Background(), p); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(aside, "member")); err != nil {
		t.Errorf("the resumed run lost the data dir aside: %v", err)
	}
	// k3s started before a resumed move finished: both dirs present, the
	// move refuses instead of replacing the one aside.
	if err := os.MkdirAll(p.Member.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := moveAside(p.Member.DataDir, aside); err == nil {
		t.Errorf("moveAside with both dirs present succeeded")
	}
}

// The reset records the etcd-old dir k3s made, and the hint names it.
func TestK3sClusterResetRecordsWhereK3sMovedTheData(t *testing.T) {
	dir := t.TempDir()
	p := k3sPlan(t, dir, []string{StepClusterReset, StepStart})
	r := &Runner{
		Plans: Plans{Dir: filepath.Join(dir, "plans")},
		Host:  Commands{StartCommand: []string{"false"}},
		Reset: func(_ context.Context, _ string) error {
			// What k3s does: the data dir goes to etcd-old-<time>.
			if err := os.Rename(p.Member.DataDir, p.Member.DataDir+"-old-1795000000"); err != nil {
				return err
			}
			return os.MkdirAll(filepath.Join(p.Member.DataDir, "member"), 0o700)
		},
	}
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "start") {
		t.Fatalf("Run: %v, want the start step to fail", err)
	}
	if got := p.Steps[0].Detail; got != p.Member.DataDir+"-old-1795000000" {
		t.Errorf("recorded %q", got)
	}
	if h := p.Hint(); !strings.Contains(h, "etcd-old-1795000000") || !strings.Contains(h, "systemctl start k3s") {
		t.Errorf("hint %q: want where the old data is and how to start k3s", h)
	}
}

// The reset server waits while another server's etcd still listens, and
// names it when it gives up.
func TestWaitPeersStopped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := "https://" + ln.Addr().String()
	err = waitPeersStopped(context.Background(), []string{peer}, 1500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), peer) {
		t.Errorf("with the peer listening: %v, want an error naming %s", err, peer)
	}
	ln.Close()
	if err := waitPeersStopped(context.Background(), []string{peer}, 5*time.Second); err != nil {
		t.Errorf("with the peer stopped: %v", err)
	}
}

// Bootstrap files go in place; a different file already there is kept
// aside, the same one is left alone.
func TestPutBootstrapFiles(t *testing.T) {
	staged, dataDir := t.TempDir(), t.TempDir()
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(staged, "server", "token"), "K10snapshot-token")
	write(filepath.Join(staged, "server", "cred", "encryption-config.json"), "{}")
	write(filepath.Join(dataDir, "server", "token"), "K10other-token")
	moved, err := putBootstrapFiles(staged, dataDir, "p1")
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dataDir, "server", "token")
	if len(moved) != 1 || moved[0] != token+".aside-p1" {
		t.Errorf("moved aside %v", moved)
	}
	for path, want := range map[string]string{token: "K10snapshot-token", token + ".aside-p1": "K10other-token", filepath.Join(dataDir, "server", "cred", "encryption-config.json"): "{}"} {
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if moved, err := putBootstrapFiles(staged, dataDir, "p1"); err != nil || len(moved) != 0 {
		t.Errorf("second run moved %v, %v; want nothing", moved, err)
	}
}

// A rejoining server waits for the reset server as long as its plan says
// (kubectl dr recover --join-timeout), then fails saying how long it
// waited and why; its data dir is not moved and k3s not started.
func TestK3sRejoinWaitsAsLongAsThePlanSays(t *testing.T) {
	dir := t.TempDir()
	p := k3sPlan(t, dir, []string{StepStop, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy})
	p.ResetClientURLs = []string{"https://10.0.0.1:2379"}
	p.PeersWait = 100 * time.Millisecond
	r := &Runner{
		Plans:        Plans{Dir: filepath.Join(dir, "plans")},
		Host:         Commands{StopCommand: []string{"true"}, StartCommand: []string{"touch", filepath.Join(dir, "started")}},
		Healthy:      func(context.Context) error { return nil },
		ResetHealthy: func(context.Context, []string) error { return errors.New("connection refused") },
	}
	start := time.Now()
	err := r.Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "the reset server's etcd is not healthy after 100ms: connection refused") {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("waited %s, the plan says 100ms", took)
	}
	if _, err := os.Stat(filepath.Join(p.Member.DataDir, "member")); err != nil {
		t.Errorf("the data dir moved: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
		t.Error("k3s started although the reset server never became healthy")
	}
	if h := p.Hint(); !strings.Contains(h, "once the reset server is healthy") {
		t.Errorf("hint %q", h)
	}
	if (&Plan{}).peersWait() != PeersLimit {
		t.Errorf("a plan without a wait waits %s, want %s", (&Plan{}).peersWait(), PeersLimit)
	}
}
