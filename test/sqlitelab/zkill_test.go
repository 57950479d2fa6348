package sqlitelab

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// This file's name sorts last: the test grows state.db, and the tests
// before it restore copies of it.

// ballast grows state.db by mib MiB in a table of its own (kine never
// reads it), so the online copy takes long enough to be caught mid-way.
func ballast(t *testing.T, mib int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+server.StateDB+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS dr_test_ballast (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	for range mib {
		if _, err := db.Exec(`INSERT INTO dr_test_ballast VALUES (randomblob(1048576))`); err != nil {
			t.Fatal(err)
		}
	}
}

func snapshotFiles(t *testing.T, prefix string) (final, parts []string) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(server.StateDB), "snapshots")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if strings.HasSuffix(e.Name(), ".part") {
			if info, err := e.Info(); err == nil && info.Size() > 0 {
				parts = append(parts, e.Name())
			}
			continue
		}
		final = append(final, e.Name())
	}
	return final, parts
}

// The agent killed in the middle of copying state.db leaves a .part and
// nothing else: no snapshot listed (not by ls, not by ls --all), and the
// next save works. The agent is frozen (SIGSTOP) once the copy has begun,
// so what it left is looked at before it can finish; a copy that finished
// before the freeze is retried with a bigger database.
func TestSQLiteAgentKilledMidCopyListsNothing(t *testing.T) {
	agent := "agent-" + lab.SQLiteNode
	caught := false
	for attempt, mib := range []int{96, 256, 512} {
		name := fmt.Sprintf("killed%d", attempt)
		ballast(t, mib)
		cmd := exec.Command(theLab.Bin.KubectlDR, "etcd", "snapshot", "save", "--name", name)
		cmd.Env = append(append(os.Environ(), theLab.UserEnv()...), env(t)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// The positive signal: a .part copy with bytes in it.
		var parts []string
		for parts == nil {
			select {
			case err := <-done:
				t.Fatalf("save %s ended (%v) before a .part copy was seen:\n%s", name, err, out.String())
			case <-time.After(2 * time.Millisecond):
			}
			_, parts = snapshotFiles(t, name+"-")
		}
		if err := theLab.PauseProcess(agent); err != nil {
			t.Fatal(err)
		}
		if final, _ := snapshotFiles(t, name+"-"); len(final) > 0 {
			// The copy finished between the look and the freeze.
			t.Logf("attempt %d (%d MiB more): the copy finished before the freeze; again with a bigger database", attempt, mib)
			theLab.ResumeProcess(agent)
			<-done
			if r := kubectlDR(t, "etcd", "snapshot", "rm", final[0]); r.Code != 0 {
				t.Fatalf("rm %s: exit %d\n%s", final[0], r.Code, r.Stderr)
			}
			continue
		}
		if _, err := theLab.KillProcess(agent); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err == nil {
			t.Errorf("save %s exited 0 although its agent was killed:\n%s", name, out.String())
		}
		caught = true
		if final, parts := snapshotFiles(t, name+"-"); len(final) != 0 || len(parts) != 1 {
			t.Errorf("after the kill: snapshots %v and .part copies %v, want none and one", final, parts)
		}
		s, err := theLab.UpSQLite(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		server = s
		for _, args := range [][]string{{"etcd", "snapshot", "ls"}, {"etcd", "snapshot", "ls", "--all"}} {
			r := kubectlDR(t, args...)
			if r.Code != 0 || strings.Contains(r.Stdout, name+"-") {
				t.Errorf("%s after the kill: exit %d, want nothing of %s listed\n%s%s", strings.Join(args, " "), r.Code, name, r.Stdout, r.Stderr)
			}
		}
		break
	}
	if !caught {
		t.Fatal("the copy always finished before the agent could be frozen")
	}
	snap := saveSnapshot(t, "after-kill")
	r := kubectlDR(t, "etcd", "snapshot", "ls")
	if r.Code != 0 || !strings.Contains(r.Stdout, snap.Name) {
		t.Errorf("the save after the kill is not listed:\n%s%s", r.Stdout, r.Stderr)
	}
}
