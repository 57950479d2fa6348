package pgbackup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
)

// ScratchPID is the pid file of a scratch instance (VerifyOptions.PIDFile):
// which process to stop, and the data directory that proves it is still
// the same one.
type ScratchPID struct {
	PID     int    `json:"pid"`
	DataDir string `json:"dataDir"`
	// WorkDir holds its socket, log and pg_hba.conf.
	WorkDir string `json:"workDir"`
}

// WriteScratchPID writes p to path.
func WriteScratchPID(path string, p ScratchPID) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return durable.WriteFile(path, data, 0o600)
}

// StopScratch stops the scratch instance a pid file names, when it still
// runs: only a postgres process whose -D is the recorded data directory
// (/proc/<pid>/cmdline), never whatever reused the pid. It reports whether
// it stopped one, and removes the pid file and the instance's work
// directory.
func StopScratch(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var p ScratchPID
	if err := json.Unmarshal(data, &p); err != nil || p.PID <= 1 || p.DataDir == "" {
		return false, fmt.Errorf("scratch PostgreSQL pid file %s: not a pid file (%q)", path, data)
	}
	stopped := false
	if isPostgresOn(p.PID, p.DataDir) {
		// Immediate shutdown: the copy is thrown away, and postgres takes
		// its children down with it.
		if err := syscall.Kill(p.PID, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("stop scratch PostgreSQL (pid %d): %w", p.PID, err)
		}
		if !waitGone(p.PID, p.DataDir, 30*time.Second) {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			if !waitGone(p.PID, p.DataDir, 10*time.Second) {
				return false, fmt.Errorf("scratch PostgreSQL (pid %d on %s) did not exit after SIGKILL", p.PID, p.DataDir)
			}
		}
		stopped = true
	}
	if p.WorkDir != "" && filepath.IsAbs(p.WorkDir) {
		_ = os.RemoveAll(p.WorkDir)
	}
	return stopped, os.Remove(path)
}

func waitGone(pid int, dir string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for isPostgresOn(pid, dir) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// isPostgresOn reports whether pid is a live postgres whose command line
// has -D dir.
func isPostgresOn(pid int, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(cmdline) == 0 {
		return false // gone, or a zombie (its cmdline is empty)
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if filepath.Base(string(args[0])) != "postgres" {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if string(args[i]) == "-D" && filepath.Clean(string(args[i+1])) == filepath.Clean(dir) {
			return true
		}
	}
	return false
}
