package restoreplan

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

const stagedToken = "K10staged0123456789::server:secret-of-the-cluster"

// bootstrapPlan is a k3s plan onto a new host whose bootstrap files are
// staged under stateDir as Prepare stages them.
func bootstrapPlan(t *testing.T, stateDir, dataDir string) *Plan {
	t.Helper()
	p := k3sPlan(t, dataDir, []string{StepStop, StepBootstrap, StepClusterReset, StepStart, StepHealthy})
	p.BootstrapDir = filepath.Join(stateDir, "restore", p.ID+bootstrapSuffix)
	writeFile(t, filepath.Join(p.BootstrapDir, "server", "token"), stagedToken)
	return p
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// holding lists the files under dir whose bytes contain s.
func holding(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(s)) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// After a restore, done, failed or rolled back, the server token is in
// the data dir's server/token (when the plan got that far) and in no file
// under the agent's state dir.
func TestRestoreLeavesNoTokenInTheStateDir(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stop      string
		reset     error
		wantErr   string
		wantToken bool
	}{
		{name: "done", stop: "true", wantToken: true},
		{name: "failed after the bootstrap files went in", stop: "true", reset: errors.New("k3s exited 1"), wantErr: "k3s exited 1", wantToken: true},
		{name: "stop failed: rolled back", stop: "false", wantErr: "rolled back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir, dataDir := t.TempDir(), t.TempDir()
			p := bootstrapPlan(t, stateDir, dataDir)
			r := &Runner{
				Plans:   PlansIn(stateDir),
				Host:    Commands{StopCommand: []string{tc.stop}, StartCommand: []string{"true"}},
				Healthy: func(context.Context) error { return nil },
				Reset:   func(context.Context, string) error { return tc.reset },
			}
			if err := r.Plans.Save(p); err != nil {
				t.Fatal(err)
			}
			err := r.Run(context.Background(), p)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run: %v, want %q", err, tc.wantErr)
			}
			if !p.Finished() {
				t.Fatalf("plan not finished: %+v", p.Steps)
			}
			if found := holding(t, stateDir, stagedToken); len(found) > 0 {
				t.Errorf("the server token is still under the state dir in %v", found)
			}
			got, err := os.ReadFile(filepath.Join(dataDir, "server", "token"))
			if tc.wantToken && (err != nil || string(got) != stagedToken) {
				t.Errorf("data dir's server/token = %q, %v; want the snapshot's", got, err)
			}
		})
	}
}

// An agent that starts removes the staged files of plans that are over or
// gone, and keeps those a plan still needs.
func TestSweepBootstrap(t *testing.T) {
	stateDir, dataDir := t.TempDir(), t.TempDir()
	plans := PlansIn(stateDir)
	staged := func(id string, state string) string {
		p := bootstrapPlan(t, stateDir, dataDir)
		p.ID = id
		p.BootstrapDir = filepath.Join(stateDir, "restore", id+bootstrapSuffix)
		writeFile(t, filepath.Join(p.BootstrapDir, "server", "token"), stagedToken)
		if state != "" {
			p.Created = time.Now().UTC()
			for i := range p.Steps {
				p.Steps[i].State = state
			}
			if err := plans.Save(p); err != nil {
				t.Fatal(err)
			}
		}
		return p.BootstrapDir
	}
	// bootstrapPlan staged plan-k3s's too: no state file, gone.
	done, gone, prepared := staged("plan-done", Done), staged("plan-gone", ""), staged("plan-prepared", Pending)
	removed, err := SweepBootstrap(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{done, gone, filepath.Join(stateDir, "restore", "plan-k3s"+bootstrapSuffix)} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v); removed %v", dir, err, removed)
		}
	}
	if _, err := os.Stat(filepath.Join(prepared, "server", "token")); err != nil {
		t.Errorf("the prepared plan's staged token was removed: %v", err)
	}
}

// A bootstrap step writes only the files k3s keeps, as regular files, and
// never through a symbolic link: otherwise nothing is written.
func TestPutBootstrapFilesRefuses(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, staged, dataDir string)
		want  string
	}{
		{name: "a file k3s does not keep", want: `"server/tls/server-ca.key" is not a file k3s keeps`, setup: func(t *testing.T, staged, _ string) {
			writeFile(t, filepath.Join(staged, "server", "tls", "server-ca.key"), "key")
		}},
		{name: "a staged symbolic link", want: "is not a regular file", setup: func(t *testing.T, staged, _ string) {
			os.MkdirAll(filepath.Join(staged, "server", "cred"), 0o700)
			if err := os.Symlink("/etc/shadow", filepath.Join(staged, "server", "cred", "encryption-config.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "server is a link out of the data dir", want: "is a symbolic link", setup: func(t *testing.T, _, dataDir string) {
			if err := os.Symlink(outside, filepath.Join(dataDir, "server")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "the token is a link", want: "is a symbolic link", setup: func(t *testing.T, _, dataDir string) {
			os.MkdirAll(filepath.Join(dataDir, "server"), 0o700)
			if err := os.Symlink(filepath.Join(outside, "token"), filepath.Join(dataDir, "server", "token")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			staged, dataDir := t.TempDir(), t.TempDir()
			writeFile(t, filepath.Join(staged, "server", "token"), stagedToken)
			tc.setup(t, staged, dataDir)
			_, err := putBootstrapFiles(staged, dataDir, "p1")
			if !errors.Is(err, dbsnap.ErrBootstrapPath) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("err = %v, want ErrBootstrapPath with %q", err, tc.want)
			}
			if found := append(holding(t, outside, stagedToken), holding(t, dataDir, stagedToken)...); len(found) > 0 {
				t.Errorf("written anyway: %v", found)
			}
		})
	}
}
