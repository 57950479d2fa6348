package restic

import "syscall"

// procAttr asks the kernel to interrupt restic when the agent dies (the
// node's agent killed or its pod deleted mid-backup): restic then removes
// its lock instead of leaving it to look stale.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGINT} }
