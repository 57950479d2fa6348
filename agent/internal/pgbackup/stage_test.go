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
