//go:build !windows

package backup

import "syscall"

// detachAttr puts the background backup in its own session, so closing
// the terminal does not stop it.
func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
