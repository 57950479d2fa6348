package walstage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// poll is how often a restore_command waiting for a file looks again: a
// stat, far below the time PostgreSQL takes to replay a segment.
const poll = 5 * time.Millisecond

// FetchFromDir copies the file name from the stage dir to dest, for
// restore_command. A name the stage's plan does not hold is not in the
// archive (walobj.ErrNotFound: recovery ends there); one it holds but has
// not fetched yet is waited for while the agent staging it runs. A stage
// that failed, or whose agent is gone before the file arrived, is an error
// (recovery must not end early as if the archive ended).
func FetchFromDir(ctx context.Context, dir, name, dest string) error {
	if walobj.Classify(name) == walobj.Unknown {
		return fmt.Errorf("%q is not a WAL file name (want a segment such as 000000010000000000000003, a .history, .backup or .partial file)", name)
	}
	plan, err := readPlan(dir)
	if err != nil {
		return fmt.Errorf("%s is not a WAL stage (%v): restore_command reads the stage a restore made", dir, err)
	}
	if !plan[name] {
		return fmt.Errorf("%s: %w (the stage %s does not hold it)", name, walobj.ErrNotFound, dir)
	}
	src := filepath.Join(dir, name)
	for {
		err := copyFile(src, dest)
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if msg, err := os.ReadFile(filepath.Join(dir, failedFile)); err == nil {
			return fmt.Errorf("%s is not staged: staging failed: %s", name, strings.TrimSpace(string(msg)))
		}
		active, err := os.ReadFile(filepath.Join(dir, activeFile))
		if err != nil || !alive(string(active)) {
			// Finished (or its agent died) meanwhile: the file may have
			// arrived just before.
			if err := copyFile(src, dest); !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if _, serr := os.Stat(dir); serr != nil {
				return fmt.Errorf("%s is not staged: the stage %s is gone: %v", name, dir, serr)
			}
			return fmt.Errorf("%s is not staged in %s, and staging is not running (the agent that staged it stopped): restore again", name, dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// alive reports whether the pid in a stage's active file runs.
func alive(pidText string) bool {
	pid, err := strconv.Atoi(strings.TrimSpace(pidText))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// copyFile copies src to dest as PostgreSQL's restore_command examples
// do: the file under dest is PostgreSQL's to check and rename.
func copyFile(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", dest, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dest, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dest, err)
	}
	return nil
}
