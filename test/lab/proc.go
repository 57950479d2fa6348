package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a long-running process of the lab, tracked by a pid file.
type proc struct {
	name    string
	pidFile string
	logFile string
	// stopSignal asks the process to exit cleanly.
	stopSignal syscall.Signal
}

func (l *Lab) proc(name string) proc {
	return proc{
		name:       name,
		pidFile:    filepath.Join(l.Dir, "run", name+".pid"),
		logFile:    filepath.Join(l.Dir, "logs", name+".log"),
		stopSignal: syscall.SIGTERM,
	}
}

// pid returns the process's pid if its pid file names a live process that
// belongs to this lab.
func (p proc) pid(labDir string) (int, bool) {
	data, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if !alive(pid) {
		return pid, false
	}
	// A recycled pid must not be mistaken for ours: our processes carry the
	// lab directory on their command line.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return pid, false
	}
	// Right after fork the parent may run before execve has set up the new
	// arguments: an empty command line is a process still starting.
	if len(cmdline) > 0 && !bytes.Contains(cmdline, []byte(labDir)) {
		return pid, false
	}
	return pid, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	return stat[i+2] != 'Z'
}

// start runs cmd detached (own session, output to the log file) and records
// its pid.
func (p proc) start(cmd *exec.Cmd) (*exec.Cmd, error) {
	if err := os.MkdirAll(filepath.Dir(p.logFile), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p.pidFile), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n==== %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	// Reap it if it exits while this process lives, so it does not linger
	// as a zombie that looks alive.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return cmd, nil
}

// waitReady polls check until it succeeds, the process dies, or the timeout
// passes; failures carry the last lines of the process's log.
func (p proc) waitReady(ctx context.Context, labDir string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if _, ok := p.pid(labDir); !ok {
			return fmt.Errorf("%s exited during start-up; last lines of %s:\n%s", p.name, p.logFile, p.logTail(20))
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (%v); last lines of %s:\n%s", p.name, timeout, last, p.logFile, p.logTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p proc) logTail(n int) string {
	data, err := os.ReadFile(p.logFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(data, n)
}

// stop signals the process and waits for it to exit, killing it after the
// grace period. It only touches a process whose pid file is ours.
func (p proc) stop(labDir string, grace time.Duration) (bool, error) {
	pid, ok := p.pid(labDir)
	if !ok {
		_ = os.Remove(p.pidFile)
		return false, nil
	}
	if err := syscall.Kill(pid, p.stopSignal); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("stop %s (pid %d): %w", p.name, pid, err)
	}
	deadline := time.Now().Add(grace)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if alive(pid) {
				return true, fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A stop of the same process run at once (a restore's stop command
	// run again by an agent that was restarted while the first still
	// ran) may have removed it: stopped is stopped, as for systemctl.
	if err := os.Remove(p.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, err
	}
	return true, nil
}

// freePort picks a free loopback port below the kernel's ephemeral range
// (a port from bind(0) is an ephemeral one, which an outgoing connection
// can take before the component that was meant to listen on it starts),
// and none that taken holds: ports picked for a lab are bound only as its
// parts start, so a second pick must not land on the first.
func freePort(taken map[string]int) (int, error) {
	used := map[int]bool{}
	for _, p := range taken {
		used[p] = true
	}
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				low = v
			}
		}
	}
	for i := 0; i < 200; i++ {
		p := 10000 + rand.IntN(low-10000)
		if !used[p] && portFree(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("find a free port: none of 200 tries below %d was free", low)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func dialCheck(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}
