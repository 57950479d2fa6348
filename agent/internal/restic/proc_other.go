//go:build !linux

package restic

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
