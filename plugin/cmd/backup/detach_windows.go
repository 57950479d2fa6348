//go:build windows

package backup

import "syscall"

func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
