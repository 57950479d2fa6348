package restic

import (
	"os/exec"
	"runtime"
	"syscall"
)

// procAttr asks the kernel to interrupt restic when the agent dies (the
// node's agent killed or its pod deleted mid-backup): restic then removes
// its lock instead of leaving it to look stale.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT} }

// startLow starts cmd at the lowest CPU priority (nice 19). A child takes
// the nice value of the thread that forks it, so a thread of its own is
// lowered and forks; it stays until done is closed, because the parent
// death signal (procAttr) follows the forking thread, not the process. It
// is never unlocked: the thread ends with the goroutine, and its priority
// with it.
func startLow(cmd *exec.Cmd, done <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// On Linux the nice value is the thread's; who 0 is this thread.
		// A refusal leaves the normal priority: slower, not wrong.
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19)
		errc <- cmd.Start()
		<-done
	}()
	return <-errc
}
