package restic

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// A restic started for low-priority work runs at nice 19, with the agent's
// parent-death signal still armed, and the agent's own threads keep theirs.
func TestStartLowRunsTheChildAtNice19(t *testing.T) {
	before, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Field 19 of /proc/PID/stat is the nice value.
	cmd := exec.Command("sh", "-c", "sleep 0.3; cut -d' ' -f19 /proc/$$/stat")
	cmd.SysProcAttr = procAttr()
	var out bytes.Buffer
	cmd.Stdout = &out
	done := make(chan struct{})
	if err := startLow(cmd, done); err != nil {
		t.Fatal(err)
	}
	// The forking thread stays while the child runs: were it gone, the
	// parent-death signal would have interrupted the sleep.
	err = cmd.Wait()
	close(done)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "19" {
		t.Fatalf("child's nice value %q, want 19", got)
	}
	after, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil || after != before {
		t.Fatalf("this thread's priority %d before, %d after (%v)", before, after, err)
	}
}
