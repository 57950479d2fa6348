package restoreplan

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// A k3s server on SQLite restores by swapping files: k3s stopped,
// state.db, state.db-wal and state.db-shm moved aside together (a WAL left
// beside another database would be replayed onto it), the verified copy
// put in place, k3s started, and kine waited for. If k3s does not come
// back on the copy, the files from before are put back and k3s started on
// them.
const (
	// RoleSQLite is a single server's part on SQLite.
	RoleSQLite = "sqlite"
	// StepSwapStateDB moves state.db and its WAL files aside and puts
	// the restored copy in place.
	StepSwapStateDB = "swap-state-db"
)

func (r *Runner) kineLimit() time.Duration {
	if r.KineLimit > 0 {
		return r.KineLimit
	}
	return healthyLimit
}

// sqliteFiles are the files that make up a SQLite database in WAL mode.
func sqliteFiles(db string) []string { return []string{db, db + "-wal", db + "-shm"} }

// renamed is f, one of db's files, under db's new name db+suffix:
// state.db-wal goes to state.db<suffix>-wal, so that the files moved
// together stay one database that opens with its WAL.
func renamed(db, f, suffix string) string { return db + suffix + strings.TrimPrefix(f, db) }

// stateDB is the plan's live database.
func (p *Plan) stateDB() string { return etcdsnap.Layout{DataDir: p.K3sDataDir}.StateDB() }

// sqliteStaging is where the restored copy waits beside state.db, on the
// same file system, until the swap renames it into place.
func sqliteStaging(db, planID string) string { return db + ".restoring-" + planID }

// stageSQLite copies the verified snapshot file beside state.db, checked
// against the snapshot's sha256 as it is written, and checks that it is a
// sound kine database before anything stops.
func stageSQLite(ctx context.Context, p *Plan, cache string) error {
	staging := sqliteStaging(p.stateDB(), p.ID)
	// A new host may have no server/db yet.
	if err := durable.MkdirAll(filepath.Dir(staging), 0o700); err != nil {
		return err
	}
	os.Remove(staging)
	in, err := os.Open(cache)
	if err != nil {
		return err
	}
	defer in.Close()
	n, sum, err := durable.Copy(staging, in, 0o600)
	if err != nil {
		return fmt.Errorf("copy the snapshot beside %s: %w", p.stateDB(), err)
	}
	if got := hex.EncodeToString(sum); got != p.SnapshotSHA256 || n != p.SnapshotSize {
		os.Remove(staging)
		return fmt.Errorf("%w: %s is %d bytes with sha256 %s, snapshot %s is %d bytes, %s", dbsnap.ErrChecksum, staging, n, got, p.Snapshot, p.SnapshotSize, p.SnapshotSHA256)
	}
	if err := etcdsnap.CheckSQLite(ctx, staging); err != nil {
		os.Remove(staging)
		return fmt.Errorf("%w: snapshot %s: %v", dbsnap.ErrChecksum, p.Snapshot, err)
	}
	p.Staging = staging
	return nil
}

// swapStateDB moves the live database's files to state.db<aside>[-wal,
// -shm] and the
// staged copy to state.db. Run again after an interruption, it finishes
// what it started and never moves an aside file again.
func swapStateDB(db, staging, aside string) error {
	if exists(db+aside) || !exists(db) {
		// The old database went aside (or there was none: a new host).
		for _, f := range sqliteFiles(db)[1:] {
			if exists(f) && exists(renamed(db, f, aside)) {
				return fmt.Errorf("both %s and %s exist: k3s started here during the swap; stop it and sort them out by hand", f, renamed(db, f, aside))
			}
			if exists(f) {
				if err := durable.Rename(f, renamed(db, f, aside)); err != nil {
					return fmt.Errorf("move %s aside: %w", f, err)
				}
			}
		}
		if exists(db) && !exists(staging) {
			return nil
		}
		if !exists(staging) {
			return fmt.Errorf("no restored copy at %s and no %s: the previous database is at %s; move it back to roll back", staging, db, db+aside)
		}
		if err := durable.Rename(staging, db); err != nil {
			return fmt.Errorf("put the restored copy in place of %s: %w", db, err)
		}
		return nil
	}
	if !exists(staging) {
		return fmt.Errorf("no restored copy at %s (it is put there before k3s stops): nothing was changed", staging)
	}
	for _, f := range sqliteFiles(db) {
		if !exists(f) {
			continue
		}
		if exists(renamed(db, f, aside)) {
			return fmt.Errorf("%s exists already: nothing was moved onto it; move it away and restore again", renamed(db, f, aside))
		}
		if err := durable.Rename(f, renamed(db, f, aside)); err != nil {
			return fmt.Errorf("move %s aside: %w (files moved so far keep the %s suffix)", f, err, aside)
		}
	}
	if err := durable.Rename(staging, db); err != nil {
		return fmt.Errorf("put the restored copy in place of %s: %w", db, err)
	}
	return nil
}

// rollbackSQLite puts the database from before the restore back after k3s
// did not come up on the restored copy: k3s stopped, the restored files
// moved to state.db.failed-<plan>[-wal,-shm] (kept, to see why), the aside ones back,
// k3s started.
func (r *Runner) rollbackSQLite(ctx context.Context, p *Plan, aside string) error {
	if err := r.Host.Stop(ctx); err != nil {
		return fmt.Errorf("stop k3s: %w", err)
	}
	db := p.stateDB()
	failed := ".failed-" + p.ID
	for _, f := range sqliteFiles(db) {
		if exists(f) {
			if err := durable.Rename(f, renamed(db, f, failed)); err != nil {
				return fmt.Errorf("move the restored %s to %s: %w", f, renamed(db, f, failed), err)
			}
		}
	}
	for _, f := range sqliteFiles(db) {
		if exists(renamed(db, f, aside)) {
			if err := durable.Rename(renamed(db, f, aside), f); err != nil {
				return fmt.Errorf("move %s back: %w", renamed(db, f, aside), err)
			}
		}
	}
	if err := r.Host.Start(ctx); err != nil {
		return fmt.Errorf("start k3s on the previous database: %w", err)
	}
	return nil
}

// sqliteStepFailed handles a failed start or wait on the restored copy:
// everything is put back as it was.
func (r *Runner) sqliteStepFailed(ctx context.Context, p *Plan, cause error) error {
	aside := ""
	for _, s := range p.Steps {
		if s.Name == StepSwapStateDB {
			aside = s.Detail
		}
	}
	if aside == "" {
		return cause
	}
	if err := r.rollbackSQLite(ctx, p, strings.TrimPrefix(aside, p.stateDB())); err != nil {
		return fmt.Errorf("%w; and putting the previous database back failed: %v", cause, err)
	}
	return fmt.Errorf("%w; k3s did not come up on the restored copy: the previous database is back in place and k3s started on it (the restored files are at %s.failed-%s)", cause, p.stateDB(), p.ID)
}

// kineHealthy reports whether kine answers a read at endpoint: k3s is
// serving the restored database.
func kineHealthy(client etcdmember.ClientConfig) func(context.Context) error {
	return func(ctx context.Context) error {
		var cli *clientv3.Client
		var err error
		if strings.HasPrefix(client.Endpoint, "https://") {
			cli, err = client.New()
		} else {
			cli, err = clientv3.New(clientv3.Config{Endpoints: []string{client.Endpoint}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
		}
		if err != nil {
			return err
		}
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := cli.Get(cctx, "/registry/health"); err != nil {
			return fmt.Errorf("kine at %s: %w", client.Endpoint, err)
		}
		return nil
	}
}

// errNotSQLiteSnapshot is returned when the datastore of a snapshot and
// of the server do not match.
var errNotSQLiteSnapshot = errors.New("the snapshot and this server keep different datastores")
