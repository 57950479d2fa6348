package pgbackup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Verified is what a scratch instance recovered.
type Verified struct {
	RecoveredTo time.Time
	RowCounts   map[string]int64
	// Checks are the results of VerifyOptions.Checks, in their order.
	Checks []CheckResult
}

// Check is one SQL statement run in the recovered database: it must return
// one row of one column whose text is Expect.
type Check struct {
	Name, Database, Query, Expect string
	// Timeout bounds the query (default 30 s).
	Timeout time.Duration
}

// CheckResult is what a check's query returned, as psql -At prints it.
type CheckResult struct {
	Check
	Got      string
	OK       bool
	Error    string
	Duration time.Duration
}

// VerifyOptions adds to what Verify does.
type VerifyOptions struct {
	// PIDFile, when set, is written once the scratch instance started:
	// its pid and data directory (ScratchPID), so that an agent killed
	// while it runs can stop it when it starts again.
	PIDFile string
	// Checks run in the recovered database once it promoted.
	Checks []Check
	// Promoted is called once recovery has finished, before the counts
	// and checks.
	Promoted func()
	// Stage, when set, is the WAL stage still being fetched: the scratch
	// instance's restore_command waits for each file the stage has not
	// fetched yet (ReplayWaitCommand), so replay overlaps the download.
	Stage string
}

// Verify starts a scratch PostgreSQL on a restored directory (no TCP, its
// own socket, trust on that socket only, archiving off), waits for recovery
// to reach its target and promote, reports the last replayed transaction's
// time and each user table's row count, and stops it.
func Verify(ctx context.Context, dir string, port int) (*Verified, error) {
	return VerifyWith(ctx, dir, port, VerifyOptions{})
}

// VerifyWith is Verify with the options' pid file and checks.
func VerifyWith(ctx context.Context, dir string, port int, o VerifyOptions) (*Verified, error) {
	version, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return nil, err
	}
	bin, err := postgresBinary(strings.TrimSpace(string(version)))
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	uid, gid := owner(st)
	work, err := os.MkdirTemp("", "dr-pg-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.Chown(work, uid, gid); err != nil {
		return nil, err
	}
	hba := filepath.Join(work, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.Chown(hba, uid, gid); err != nil {
		return nil, err
	}
	var extra []string
	if o.Stage != "" {
		extra = append(extra, "-c", "restore_command="+ReplayWaitCommand(o.Stage))
	}
	logPath := filepath.Join(work, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, append([]string{"-D", dir,
		"-c", "port=" + strconv.Itoa(port),
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories=" + work,
		"-c", "hba_file=" + hba,
		"-c", "archive_mode=off",
	}, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Its own process group: a signal meant for the agent's group (a
	// terminal's ^C) does not reach it half-way through recovery; the
	// deferred stop below, or ScratchPID after the agent died, ends it.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start scratch PostgreSQL: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if o.PIDFile != "" {
			_ = os.Remove(o.PIDFile)
		}
	}()
	if o.PIDFile != "" {
		if err := WriteScratchPID(o.PIDFile, ScratchPID{PID: cmd.Process.Pid, DataDir: dir, WorkDir: work}); err != nil {
			return nil, err
		}
	}
	logTail := func() string {
		data, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		return strings.Join(lines[max(0, len(lines)-8):], "\n")
	}
	userName := "postgres"
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "postgres" {
		userName = u.Username
	}
	dsn := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres", work, port, userName)
	deadline := time.Now().Add(10 * time.Minute)
	var conn *pgx.Conn
	for {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("scratch PostgreSQL exited during recovery (%v):\n%s", err, logTail())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("recovery not finished after 10 minutes:\n%s", logTail())
		}
		if conn == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				continue // still starting or replaying
			}
			conn = c
			defer conn.Close(context.WithoutCancel(ctx))
		}
		var inRecovery bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return nil, err
		}
		if !inRecovery {
			break
		}
	}
	if o.Promoted != nil {
		o.Promoted()
	}
	v := &Verified{RowCounts: map[string]int64{}}
	var replayed *time.Time
	if err := conn.QueryRow(ctx, "SELECT pg_last_xact_replay_timestamp()").Scan(&replayed); err != nil {
		return nil, err
	}
	if replayed != nil {
		v.RecoveredTo = *replayed
	}
	rows, err := conn.Query(ctx, "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1 LIMIT 100")
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return nil, err
		}
		v.RowCounts[t] = n
	}
	for _, c := range o.Checks {
		v.Checks = append(v.Checks, runCheck(ctx, conn, fmt.Sprintf("host=%s port=%d user=%s", work, port, userName), c))
	}
	return v, nil
}

// runCheck runs one check, on conn when it is for the postgres database,
// else on a connection of its own to c.Database.
func runCheck(ctx context.Context, conn *pgx.Conn, base string, c Check) CheckResult {
	r := CheckResult{Check: c}
	if c.Database == "" {
		r.Database = "postgres"
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	defer func() { r.Duration = time.Since(start) }()
	if r.Database != "postgres" {
		c2, err := pgx.Connect(ctx, base+" dbname="+r.Database)
		if err != nil {
			r.Error = fmt.Sprintf("connect to database %s: %v", r.Database, err)
			return r
		}
		defer c2.Close(context.WithoutCancel(ctx))
		conn = c2
	}
	// The simple protocol returns every value as text, as psql -At shows
	// it ("t", "42"), whatever its type.
	rows, err := conn.Query(ctx, c.Query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		r.Error = fmt.Sprintf("run %s: %v", c.Name, err)
		return r
	}
	defer rows.Close()
	var got []string
	n := 0
	for rows.Next() {
		n++
		raw := rows.RawValues()
		if n == 1 {
			if len(raw) != 1 {
				r.Error = fmt.Sprintf("%s returned %d columns: a check returns one row of one column", c.Name, len(raw))
				return r
			}
			if raw[0] == nil {
				got = append(got, "")
			} else {
				got = append(got, string(raw[0]))
			}
		}
	}
	if err := rows.Err(); err != nil {
		r.Error = fmt.Sprintf("run %s: %v", c.Name, err)
		return r
	}
	if n != 1 {
		r.Error = fmt.Sprintf("%s returned %d rows: a check returns one row of one column", c.Name, n)
		return r
	}
	r.Got = got[0]
	r.OK = r.Got == c.Expect
	if !r.OK {
		r.Error = fmt.Sprintf("%s returned %q, want %q", c.Name, r.Got, c.Expect)
	}
	return r
}

// pgVersionRE is a major version as PG_VERSION and base backup records
// write it ("15", "9.6"). The version comes from the store (a record, a
// restored PG_VERSION) and names the directory whose binary runs: nothing
// else may pass.
var pgVersionRE = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,3})?$`)

func postgresBinary(version string) (string, error) {
	if !pgVersionRE.MatchString(version) {
		return "", fmt.Errorf("PostgreSQL version %q is not a version (want a major version such as 15): refusing to look for a server binary by it", version)
	}
	p := filepath.Join("/usr/lib/postgresql", version, "bin", "postgres")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no PostgreSQL %s server binary on this node (/usr/lib/postgresql/%s/bin/postgres): --verify needs one; restore without it and start the database yourself", version, version)
}
