package restic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
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

// Exit codes restic (0.17 and later) documents.
const (
	exitIncomplete = 3
	exitNoRepo     = 10
	exitLocked     = 11
	exitPassword   = 12
	exitInterrupt  = 130
)

// Errors a caller acts on; an *Error wraps one of them when the exit code
// says so.
var (
	ErrNoRepository  = errors.New("restic repository does not exist")
	ErrLocked        = errors.New("restic repository is locked")
	ErrWrongPassword = errors.New("wrong restic password (no key in the repository opens with it)")
	ErrInterrupted   = errors.New("restic was interrupted")
)

// Error is a restic run that failed: the subcommand, its exit code and
// what it said on stderr.
type Error struct {
	Op      string
	Code    int
	Message string
	// Errors are the messages of restic's JSON error lines on stderr
	// (check reports each problem it finds there).
	Errors []string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("exit code %d", e.Code)
	}
	return fmt.Sprintf("restic %s: %s", e.Op, msg)
}

// Problems is the first of the problems restic reported with err (a file
// it could not restore, the pack it could not load), as ": a; b; c (and
// N more)", or "" when it reported none.
func Problems(err error) string {
	var rerr *Error
	if !errors.As(err, &rerr) || len(rerr.Errors) == 0 {
		return ""
	}
	const most = 3
	out := ": " + strings.Join(rerr.Errors[:min(most, len(rerr.Errors))], "; ")
	if len(rerr.Errors) > most {
		out += fmt.Sprintf(" (and %d more)", len(rerr.Errors)-most)
	}
	return out
}

// Unwrap maps the exit code onto the errors above.
func (e *Error) Unwrap() error {
	switch e.Code {
	case exitNoRepo:
		return ErrNoRepository
	case exitLocked:
		return ErrLocked
	case exitPassword:
		return ErrWrongPassword
	case exitInterrupt:
		return ErrInterrupted
	}
	return nil
}

// Repo is one restic repository and how to open it.
type Repo struct {
	Binary string
	// Repository is what RESTIC_REPOSITORY takes: a local path or
	// s3:https://host/bucket/prefix.
	Repository   string
	PasswordFile string
	// Env holds the backend's credentials (AWS_ACCESS_KEY_ID, ...). They go
	// into the child's environment only, never its arguments.
	Env []string
	// Options are global flags for every command (-o s3.bucket-lookup=path,
	// --cacert FILE).
	Options  []string
	CacheDir string
	// LockWait is how long to wait for another process's lock
	// (--retry-lock).
	LockWait time.Duration
}

// run starts restic with args, hands each stdout line to onLine and
// returns the error restic reported. Cancelling ctx sends SIGINT, so restic
// removes its lock before it exits.
func (r *Repo) run(ctx context.Context, op string, args []string, onLine func([]byte)) error {
	full := append([]string{op, "--json"}, r.Options...)
	if r.LockWait > 0 {
		full = append(full, "--retry-lock", r.LockWait.String())
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, r.Binary, full...)
	cmd.Env = append(os.Environ(),
		"RESTIC_REPOSITORY="+r.Repository,
		"RESTIC_PASSWORD_FILE="+r.PasswordFile,
		"RESTIC_PROGRESS_FPS=2",
	)
	if r.CacheDir != "" {
		cmd.Env = append(cmd.Env, "RESTIC_CACHE_DIR="+r.CacheDir)
	}
	cmd.Env = append(cmd.Env, r.Env...)
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start restic %s (%s): %w", op, r.Binary, err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if onLine != nil {
			onLine(sc.Bytes())
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("restic %s: %w", op, err)
	}
	code := exit.ExitCode()
	if code == -1 && ctx.Err() != nil {
		code = exitInterrupt
	}
	return &Error{Op: op, Code: code, Message: stderr.message(), Errors: stderr.errors()}
}

// tailBuffer keeps the last 64 KiB restic wrote to stderr.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 64*1024 {
		t.b = t.b[len(t.b)-64*1024:]
	}
	return len(p), nil
}

// message is the exit_error restic printed, else its last lines.
func (t *tailBuffer) message() string {
	var lines []string
	for _, l := range bytes.Split(t.b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		var m struct {
			Type    string `json:"message_type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(l, &m) == nil && m.Type == "exit_error" {
			return strings.TrimPrefix(m.Message, "Fatal: ")
		}
		if json.Unmarshal(l, &m) == nil && m.Type == "error" {
			continue
		}
		lines = append(lines, string(l))
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.TrimPrefix(strings.Join(lines, "; "), "Fatal: ")
}

// errors are the messages of the JSON lines of message_type "error":
// check's carry a message, backup's an error message and the item it is
// about ("ITEM: MESSAGE").
func (t *tailBuffer) errors() []string {
	var out []string
	for _, l := range bytes.Split(t.b, []byte("\n")) {
		var m struct {
			Type    string `json:"message_type"`
			Message string `json:"message"`
			// restore and backup put theirs in error.message, with the
			// item it is about.
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
			Item string `json:"item"`
		}
		if json.Unmarshal(bytes.TrimSpace(l), &m) != nil || m.Type != "error" {
			continue
		}
		msg := strings.TrimSpace(m.Message)
		if msg == "" {
			msg = strings.TrimSpace(m.Error.Message)
			if m.Item != "" && msg != "" && !strings.Contains(msg, m.Item) {
				msg = m.Item + ": " + msg
			}
		}
		if msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

// Exists reports whether the repository is there and opens with the
// password.
func (r *Repo) Exists(ctx context.Context) (bool, error) {
	err := r.run(ctx, "cat", []string{"config"}, nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoRepository):
		return false, nil
	}
	return false, err
}

// Init creates the repository.
func (r *Repo) Init(ctx context.Context) error {
	return r.run(ctx, "init", nil, nil)
}

// Unlock removes stale locks only: those whose process is gone or that
// were not refreshed for 30 minutes. A live backup's lock stays.
func (r *Repo) Unlock(ctx context.Context) error {
	return r.run(ctx, "unlock", nil, nil)
}
