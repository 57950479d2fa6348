//go:build !linux

package restic

import (
	"os/exec"
	"syscall"
)

func procAttr() *syscall.SysProcAttr { return nil }

func startLow(cmd *exec.Cmd, _ <-chan struct{}) error { return cmd.Start() }
