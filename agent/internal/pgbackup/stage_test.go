package pgbackup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pgSubstitute does what PostgreSQL does to restore_command before it
// runs it with sh: %f, %p and %% replaced.
func pgSubstitute(cmd, f, p string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] == '%' && i+1 < len(cmd) {
			switch cmd[i+1] {
			case 'f':
				b.WriteString(f)
				i++
				continue
			case 'p':
				b.WriteString(p)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(cmd[i])
	}
	return b.String()
}

// The restore_command a restore writes copies a staged file; a file the
// archive does not have ends recovery (exit 1); a file the plan holds but
// the stage lost, or a stage gone, aborts it (exit 255), whatever the
// stage's path holds (quotes, %, spaces).
func TestStageRestoreCommand(t *testing.T) {
	stage := filepath.Join(t.TempDir(), "it's 100% a stage")
	os.MkdirAll(stage, 0o700)
	os.WriteFile(filepath.Join(stage, ".plan"), []byte("000000010000000000000003\n000000010000000000000004\n"), 0o644)
	os.WriteFile(filepath.Join(stage, "000000010000000000000003"), []byte("segment 3"), 0o644)
	cmd := stageRestoreCommand(stage)
	run := func(f string) (int, string) {
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		err := exec.Command("sh", "-c", pgSubstitute(cmd, f, dest)).Run()
		data, _ := os.ReadFile(dest)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(data)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(data)
	}
	if code, data := run("000000010000000000000003"); code != 0 || data != "segment 3" {
		t.Errorf("staged file: exit %d, %q", code, data)
	}
	if code, _ := run("00000002.history"); code != 1 {
		t.Errorf("file not in the archive: exit %d, want 1", code)
	}
	if code, _ := run("000000010000000000000004"); code != 255 {
		t.Errorf("file the stage lost: exit %d, want 255", code)
	}
	os.RemoveAll(stage)
	if code, _ := run("000000010000000000000003"); code != 255 {
		t.Errorf("stage gone: exit %d, want 255", code)
	}
	// As written in postgresql.auto.conf: a string PostgreSQL reads back.
	if q := confQuote(cmd); strings.Count(q, "'")%2 != 0 {
		t.Errorf("conf string %s has unbalanced quotes", q)
	}
}

// runRestoreCommand runs a restore_command as PostgreSQL would, for file f
// into a fresh destination; it returns the exit code and what was
// restored.
func runRestoreCommand(t *testing.T, cmd, f string) (int, string) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	err := exec.Command("sh", "-c", pgSubstitute(cmd, f, dest)).Run()
	data, _ := os.ReadFile(dest)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(data)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(data)
}

// While the stage is fetching (its agent alive), the scratch instance's
// restore_command waits for a file of the plan and copies it once it is
// renamed into place; once staging failed, or its agent is gone, a file
// still missing aborts recovery (255) instead of ending it; a file not in
// the plan is the archive's end at once.
func TestReplayWaitCommand(t *testing.T) {
	stage := filepath.Join(t.TempDir(), "stage")
	os.MkdirAll(stage, 0o700)
	const nine, ten = "000000010000000000000009", "00000001000000000000000A"
	os.WriteFile(filepath.Join(stage, ".plan"), []byte(nine+"\n"+ten+"\n"), 0o644)
	os.WriteFile(filepath.Join(stage, ".staging"), []byte("1\n"), 0o644) // pid 1 runs
	cmd := ReplayWaitCommand(stage)
	type res struct {
		code int
		data string
	}
	got := make(chan res, 1)
	go func() { c, d := runRestoreCommand(t, cmd, nine); got <- res{c, d} }()
	// It waits: the file is not there yet and staging runs. The command
	// must still be running when the file lands, so its result is the
	// file's, whenever it looked.
	os.WriteFile(filepath.Join(stage, "."+nine+".part"), []byte("segment nine"), 0o644)
	os.Rename(filepath.Join(stage, "."+nine+".part"), filepath.Join(stage, nine))
	if r := <-got; r.code != 0 || r.data != "segment nine" {
		t.Errorf("file staged while waiting: exit %d, %q", r.code, r.data)
	}
	if code, _ := runRestoreCommand(t, cmd, "00000002.history"); code != 1 {
		t.Errorf("file not in the plan: exit %d, want 1", code)
	}
	// Staging failed: the missing file aborts recovery.
	os.WriteFile(filepath.Join(stage, ".failed"), []byte("stage 00000001000000000000000A of pg: WAL object is corrupt\n"), 0o644)
	if code, _ := runRestoreCommand(t, cmd, ten); code != 255 {
		t.Errorf("staging failed: exit %d, want 255", code)
	}
	// The agent staging it is gone (no such pid): the same.
	os.Remove(filepath.Join(stage, ".failed"))
	os.WriteFile(filepath.Join(stage, ".staging"), []byte("999999999\n"), 0o644)
	if code, _ := runRestoreCommand(t, cmd, ten); code != 255 {
		t.Errorf("stager gone: exit %d, want 255", code)
	}
}
