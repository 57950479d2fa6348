// Package restic runs the restic binary shipped with the agent, always with
// --json and the password from a file, and decodes what it prints.
package restic

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Version asks the binary for its version ("0.19.1").
func Version(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s version: %w", binary, err)
	}
	// "restic 0.19.1 compiled with go1.26.8 on linux/amd64"
	fields := strings.Fields(string(out))
	if len(fields) < 2 || fields[0] != "restic" {
		return "", fmt.Errorf("run %s version: unexpected output %q", binary, strings.TrimSpace(string(out)))
	}
	return fields[1], nil
}
