package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// PGBin is the path of one of PostgreSQL's programs (psql, pgbench, ...).
func PGBin(name string) (string, error) {
	dir, err := pgBinDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// pgBinDir finds Debian's PostgreSQL 15 binaries.
func pgBinDir() (string, error) {
	for _, d := range []string{"/usr/lib/postgresql/15/bin"} {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL 15 not found: apt-get install -y postgresql-15")
}

// pgCredential runs PostgreSQL as the postgres user when the lab runs as
// root (PostgreSQL refuses root).
func pgCredential() (*syscall.SysProcAttr, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("postgres user: %w (install postgresql-15, which creates it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, uid, gid, nil
}

// WALSource is the lab's WAL source name.
const WALSource = "pg-main"

// PGData is the lab database's data directory, on the first node.
func (l *Lab) PGData() string {
	return filepath.Join(l.NodeRoot(l.State.Nodes[0]), "var", "lib", "postgresql", "15", "main")
}

// PGConnection is how the first node's agent reaches the lab database.
func (l *Lab) PGConnection() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", l.State.Ports["postgres"])
}

// WALSpool is pg-main's spool on the first node.
func (l *Lab) WALSpool() string {
	return filepath.Join(l.NodeRoot(l.State.Nodes[0]), "var", "lib", "dr-wal", WALSource)
}

// ArchiveCommand is the archive_command the README gives for a spool.
func ArchiveCommand(spool string) string {
	return fmt.Sprintf("cp %%p %[1]s/.%%f.tmp && sync %[1]s/.%%f.tmp && mv %[1]s/.%%f.tmp %[1]s/%%f", spool)
}

// upPostgres initialises (once) and starts a PostgreSQL 15 cluster on
// loopback, trusting local connections: a throwaway lab database.
func (l *Lab) upPostgres(ctx context.Context) error {
	p := l.proc("postgres")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "postgres: already running (pid %d)\n", pid)
		return nil
	}
	_, uid, gid, err := pgCredential()
	if err != nil {
		return err
	}
	base := filepath.Join(l.Dir, "postgres")
	// The data directory is on the first node, as a host-installed or
	// hostPath database's would be, so that node's agent (the DaemonSet's
	// pod) can take base backups of it.
	data, run := l.PGData(), filepath.Join(base, "run")
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return err
	}
	for _, d := range []string{base, run, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	return l.startPostgres(ctx, "postgres", data, run, l.State.Ports["postgres"], l.WALSpool())
}

// UpPostgres starts the lab's database again after StopProcess("postgres")
// (on whatever its data directory now holds: a restored one).
func (l *Lab) UpPostgres(ctx context.Context) error { return l.upPostgres(ctx) }

// InitPostgres initialises a PostgreSQL 15 data directory for a test, as
// the postgres user, with initdb's extra arguments (--wal-segsize=64):
// StartPostgres then starts it as it is.
func (l *Lab) InitPostgres(ctx context.Context, dataDir string, initdbArgs ...string) error {
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	attr, uid, gid, err := pgCredential()
	if err != nil {
		return err
	}
	if uid >= 0 {
		if err := os.Chown(dataDir, uid, gid); err != nil {
			return err
		}
	}
	return initdb(ctx, attr, dataDir, initdbArgs...)
}

// RunPostgresTool runs one of PostgreSQL's programs (pg_resetwal, ...) as
// the postgres user and returns its output.
func RunPostgresTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin, err := PGBin(name)
	if err != nil {
		return nil, err
	}
	attr, _, _, err := pgCredential()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", name, err, tail(out, 20))
	}
	return out, nil
}

func initdb(ctx context.Context, attr *syscall.SysProcAttr, data string, extra ...string) error {
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	args := append([]string{"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.SysProcAttr = attr
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb: %w\n%s", err, tail(out, 20))
	}
	return nil
}

// StartPostgres runs one more PostgreSQL 15 for a test, as the postgres
// user: data in dataDir (initdb'd once, unless InitPostgres did),
// listening on 127.0.0.1:port, archiving into spool with the README's
// archive_command. Down stops it.
func (l *Lab) StartPostgres(ctx context.Context, name, dataDir string, port int, spool string) error {
	run := filepath.Join(l.Dir, name+"-run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	_, uid, gid, err := pgCredential()
	if err != nil {
		return err
	}
	if uid >= 0 {
		for _, d := range []string{run, dataDir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	if err := l.startPostgres(ctx, name, dataDir, run, port, spool); err != nil {
		return err
	}
	l.extra = append(l.extra, name)
	return nil
}

func (l *Lab) startPostgres(ctx context.Context, name, data, run string, port int, spool string) error {
	p := l.proc(name)
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	attr, uid, gid, err := pgCredential()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := initdb(ctx, attr, data); err != nil {
			return err
		}
	}
	// archive_command copies each finished file into the spool under a
	// temporary name, syncs it and renames it, as the README tells users.
	if err := os.MkdirAll(filepath.Dir(spool), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(spool, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	if uid >= 0 {
		if err := os.Chown(spool, uid, gid); err != nil {
			return err
		}
	}
	// The pid file is written by us; postgres' own postmaster.pid is in data.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+run,
		"-c", "archive_mode=on",
		"-c", "archive_command="+ArchiveCommand(spool),
	)
	cmd.SysProcAttr = attr
	if _, err := p.start(cmd); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "%s: started on 127.0.0.1:%d\n", name, port)
	return p.waitReady(ctx, l.Dir, 60*time.Second, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_isready: %s", out)
		}
		return nil
	})
}
