package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// kubectl dr drill --keep leaves each part's scratch data on its node,
// says where and how to remove it, and leaves no process running on it.
// drillBackups makes something of every layer to rehearse: a base
// backup, a backup set (the datastore, every node's files) and a bucket
// pass.
func drillBackups(t *testing.T, set string) {
	t.Helper()
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s", r.code, r.stderr)
	}
	if r := kubectlDR(t, nil, "backup", "create", set); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { kubectlDR(t, nil, "backup", "rm", set) })
	if r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource); r.code != 0 {
		t.Fatalf("bucket backup: exit %d\n%s", r.code, r.stderr)
	}
}

func TestDrillKeepLeavesTheScratchAndSaysWhere(t *testing.T) {
	drillBackups(t, "drill-keep-e2e")
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	r := kubectlDrill(t, "--latest", "--pg", lab.WALSource, "--keep")
	t.Logf("drill --keep: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	id := drillIDIn(t, r)
	if r.code != 0 {
		t.Fatalf("drill --keep: exit %d, want 0", r.code)
	}
	if !strings.Contains(r.stderr, "Scratch data kept (--keep); no process was left running on it:") ||
		!strings.Contains(r.stderr, "Remove it on each node when done: rm -rf <dir>") {
		t.Errorf("stderr does not say where the scratch data was kept and how to remove it")
	}
	rep := showDrill(t, id)
	kept := 0
	for _, p := range rep.Parts {
		if !p.Ran() {
			continue
		}
		want := filepath.Join(agentStateDir(t, p.Node), "drill", id, p.Layer+"-"+p.Name)
		if p.ScratchDir != want {
			t.Errorf("%s: kept scratch %q, want %q", p.Key(), p.ScratchDir, want)
			continue
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(want)) })
		if !strings.Contains(r.stderr, "  "+p.Key()+" on node "+p.Node+": "+want) {
			t.Errorf("stderr does not name %s's kept scratch %s", p.Key(), want)
		}
		// A bucket part's sample went to its scratch bucket (below) when
		// its agent runs the source, else into the directory.
		inBucket := p.Layer == "bucket" && p.Facts["scratchBucket"] != ""
		if entries, err := os.ReadDir(want); !inBucket && (err != nil || len(entries) == 0) {
			t.Errorf("%s: kept scratch %s: %d entries, %v", p.Key(), want, len(entries), err)
		}
		if out := pgProcessesOn(t, want); out != "" {
			t.Errorf("%s: a process runs on the kept scratch: %s", p.Key(), out)
		}
		if inBucket {
			b := p.Facts["scratchBucket"]
			if ok, err := mc.BucketExists(t.Context(), b); b == "" || err != nil || !ok {
				t.Errorf("bucket part: kept scratch bucket %q exists %v (%v)", b, ok, err)
			} else {
				t.Cleanup(func() { removeBucket(t, mc, b) })
				if !strings.Contains(r.stderr, "and the scratch bucket "+b) {
					t.Errorf("stderr does not name the kept scratch bucket %s", b)
				}
			}
		}
		kept++
	}
	if kept == 0 {
		t.Fatal("no part kept its scratch")
	}
}

// A drill stopped by a signal (Ctrl-C, SIGTERM) while its parts run
// calls them off: it exits 130 saying it was interrupted, the stored
// report says INTERRUPTED (not passed), and once the agents have ended
// the parts no scratch directory and no scratch PostgreSQL is left.
func TestDrillInterruptedLeavesNothing(t *testing.T) {
	drillBackups(t, "drill-interrupt-e2e")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, theLab.Bin.KubectlDR, "drill", "--latest", "--pg", lab.WALSource, "-o", "json")
			cmd.Env = append(os.Environ(), theLab.UserEnv()...)
			var stdout strings.Builder
			cmd.Stdout = &stdout
			pr, pw := io.Pipe()
			cmd.Stderr = pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signalled once the postgres part restores (a positive
			// signal that the parts run).
			restoring := make(chan struct{})
			var stderr strings.Builder
			go func() {
				sc := bufio.NewScanner(pr)
				once := false
				for sc.Scan() {
					stderr.WriteString(sc.Text() + "\n")
					var ev struct{ Node, Phase string }
					if !once && json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Node == "postgres/"+lab.WALSource && ev.Phase == "restore" {
						once = true
						close(restoring)
					}
				}
			}()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait(); pw.Close() }()
			select {
			case <-restoring:
			case err := <-done:
				t.Fatalf("the drill ended before its postgres part restored: %v\n%s", err, stderr.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := <-done
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("drill after %s: %v, want exit 130\n%s", sig, err, stderr.String())
			}
			t.Logf("drill after %s:\n%s", sig, stderr.String())
			if !strings.Contains(stderr.String(), "interrupted: its parts were called off") {
				t.Errorf("stderr does not say the drill was interrupted and its parts called off")
			}
			var out struct {
				ID          string
				Passed      bool
				Interrupted bool
				Reasons     []string
			}
			if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil || out.ID == "" {
				t.Fatalf("report on stdout: %v\n%s", err, stdout.String())
			}
			// The stored record, as drill show gives it.
			var rep struct {
				Passed, Interrupted bool
				Reasons             []string
			}
			if r := kubectlDR(t, nil, "drill", "show", out.ID, "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil {
				t.Fatalf("drill show %s -o json: exit %d\n%s%s", out.ID, r.code, r.stdout, r.stderr)
			}
			if rep.Passed || !rep.Interrupted || len(rep.Reasons) == 0 || !strings.HasPrefix(rep.Reasons[0], "interrupted") {
				t.Errorf("stored report: passed %v, interrupted %v, reasons %q", rep.Passed, rep.Interrupted, rep.Reasons)
			}
			if ls := kubectlDR(t, nil, "drill", "ls"); !strings.Contains(lineWith(ls.stdout, out.ID), "INTERRUPTED") {
				t.Errorf("drill ls row: %q, want INTERRUPTED", lineWith(ls.stdout, out.ID))
			}
			// The agents end the parts after the plugin is gone: wait
			// until each has removed its scratch, then no process may
			// run on it.
			for _, n := range theLab.State.Nodes {
				dir := filepath.Join(agentStateDir(t, n), "drill", out.ID)
				deadline := time.Now().Add(2 * time.Minute)
				for {
					_, err := os.Stat(dir)
					if errors.Is(err, os.ErrNotExist) {
						break
					}
					if time.Now().After(deadline) {
						left, _ := os.ReadDir(dir)
						t.Errorf("%s: scratch %s still there 2m after the interrupt: %v", n, dir, left)
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if out := pgProcessesOn(t, dir); out != "" {
					t.Errorf("%s: scratch PostgreSQL left running: %s", n, out)
				}
			}
		})
	}
}
