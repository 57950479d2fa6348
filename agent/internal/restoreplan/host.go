package restoreplan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Commands is a Host that runs configured commands: systemctl through
// nsenter in the DaemonSet, systemctl directly on the node, or whatever
// another supervisor (or the lab) needs.
type Commands struct {
	StopCommand, StartCommand []string
	// Timeout bounds each command (default 5 minutes).
	Timeout time.Duration
}

// K3sCommands is the default for k3s: systemd's k3s unit, entered through
// the host's namespaces when the agent runs in a container.
func K3sCommands() Commands {
	prefix := []string{}
	if InContainer() {
		prefix = nsenterHost()
	}
	return Commands{
		StopCommand:  append(append([]string{}, prefix...), "systemctl", "stop", "k3s"),
		StartCommand: append(append([]string{}, prefix...), "systemctl", "start", "k3s"),
	}
}

// nsenterHost runs a command in the host's namespaces (the DaemonSet's
// container is privileged with hostPID).
func nsenterHost() []string {
	return []string{"nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"}
}

// InContainer reports whether the process runs in another mount namespace
// than the host's init.
func InContainer() bool {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	init, err2 := os.Readlink("/proc/1/ns/mnt")
	return err1 == nil && err2 == nil && self != init
}

// Stop runs the stop command.
func (c Commands) Stop(ctx context.Context) error { return c.run(ctx, "stop", c.StopCommand) }

// Start runs the start command.
func (c Commands) Start(ctx context.Context) error { return c.run(ctx, "start", c.StartCommand) }

func (c Commands) run(ctx context.Context, what string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("no %s command configured (restore.%sCommand)", what, what)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return fmt.Errorf("%s command %q: %w: %s", what, strings.Join(argv, " "), err, msg)
	}
	return nil
}
