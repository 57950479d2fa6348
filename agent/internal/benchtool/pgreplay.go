package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/walstage"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// nopObserver counts nothing.
type nopObserver struct{}

func (nopObserver) Shipped(string, int64, time.Duration) {}
func (nopObserver) Failed(string)                        {}
func (nopObserver) Refused(string)                       {}

// walship ships every file of spool (a copy of a corpus) with the agent's
// shipper, encrypted to the key's recipient, and returns once the spool is
// empty.
func walShip(ctx context.Context, spool, source, keyFile string) error {
	var recipient age.Recipient
	if keyFile != "" {
		r, _, err := dbsnap.LoadRecipient(keyFile)
		if err != nil {
			return err
		}
		recipient = r
	}
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	sh := &walship.Shipper{Source: walship.Source{Name: source, Spool: spool, Concurrency: 4}, Store: store.Sub("bench"),
		Log: slog.New(slog.DiscardHandler), Observer: nopObserver{}, Recipient: recipient, Rescan: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	for {
		entries, err := os.ReadDir(spool)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Fprintf(os.Stderr, "shipped the spool in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if st := sh.Status(); st.LastError != "" && time.Since(st.LastErrorAt) < time.Second {
			fmt.Fprintf(os.Stderr, "shipper: %s\n", st.LastError)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pgReplay replays a copy of a base backup (dir, with its backup_label)
// in a scratch PostgreSQL to the end of the archive and prints how long
// from the start to promotion. With restoreCommand it is written into the
// copy's postgresql.auto.conf (pgBackRest's archive-get); without it, the
// WAL of source is staged beside dir while PostgreSQL replays it from
// there (what pg restore --verify and the drill do). With PRESTAGE set in
// the environment the stage is complete before PostgreSQL starts, and the
// time counts from its start: replay alone.
func pgReplay(ctx context.Context, dir, source, keyFile, restoreCommand string, workers int) error {
	label, err := os.ReadFile(filepath.Join(dir, "backup_label"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "recovery.signal"), nil, 0o600); err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return err
	}
	owner := ownerOf(st)
	conf := "\nrecovery_target_timeline = 'latest'\nrecovery_target_action = 'promote'\narchive_mode = 'off'\n"
	if restoreCommand != "" {
		conf += "restore_command = '" + strings.ReplaceAll(restoreCommand, "'", "''") + "'\n"
	}
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, conf); err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{"recovery.signal", "postgresql.auto.conf"} {
		os.Lchown(filepath.Join(dir, p), owner[0], owner[1])
	}
	port, err := freePortBench()
	if err != nil {
		return err
	}
	start := time.Now()
	o := pgbackup.VerifyOptions{}
	var stage *walstage.Stage
	if restoreCommand == "" {
		var identity age.Identity
		if keyFile != "" {
			if identity, err = dbsnap.LoadIdentity(keyFile); err != nil {
				return err
			}
		}
		store, err := objstore.Open(objstore.Config{}.FromEnv())
		if err != nil {
			return err
		}
		first, err := pgbackup.FirstSegment(&basebackup.BaseBackup{Label: string(label)}, 0)
		if err != nil {
			return err
		}
		stage, err = walstage.Start(ctx, walstage.Options{Source: source, Store: store.Sub("bench"), Identity: identity,
			Dir: walstage.Dir(dir), First: first, Workers: workers, NoSync: true})
		if err != nil {
			return err
		}
		defer stage.Remove()
		os.Lchown(stage.Dir, owner[0], owner[1])
		o.Stage = stage.Dir
		if os.Getenv("PRESTAGE") != "" {
			if err := stage.Wait(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "staged everything in %s before replay\n", time.Since(start).Round(time.Millisecond))
			start = time.Now()
		}
	}
	var promoted time.Duration
	o.Promoted = func() { promoted = time.Since(start) }
	v, err := pgbackup.VerifyWith(ctx, dir, port, o)
	if err != nil {
		return err
	}
	if stage != nil {
		if err := stage.Stop(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "staged %d files\n", stage.Files)
	}
	fmt.Printf("replayed to promotion in %.2fs (pgbench_history: %d rows)\n", promoted.Seconds(), v.RowCounts["public.pgbench_history"])
	return nil
}

func ownerOf(st os.FileInfo) [2]int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return [2]int{int(s.Uid), int(s.Gid)}
	}
	return [2]int{-1, -1}
}

func freePortBench() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
