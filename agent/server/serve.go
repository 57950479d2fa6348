package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Run serves the agent with the configuration file at path until ctx ends:
// gRPC with mTLS on the configured address, metrics and health, WAL
// shipping and the scheduled jobs. When the file changes (a ConfigMap
// edited with kubectl dr config set), the agent waits for the operations
// in flight, then serves the new configuration in the same process. A file
// that does not load is reported in Info and the running one stays.
func Run(ctx context.Context, path string, opts RunOptions, log *slog.Logger) error {
	cfg, sum, err := loadConfig(path, opts)
	if err != nil {
		return err
	}
	w := &configWatch{path: path, sum: sum, opts: opts}
	// since is when the previous configuration's scheduler stopped: the
	// next one runs a tick that fell due in between.
	var since time.Time
	for {
		next, stopped, err := serve(ctx, cfg, sum, w, since, log.With("node", cfg.NodeName))
		if err != nil || next == nil {
			return err
		}
		log.Info("configuration reloaded", "node", next.cfg.NodeName, "config", path, "sha256", next.sum[:12])
		cfg, sum, since = next.cfg, next.sum, stopped
	}
}

// RunOptions are what the agent's command line, not its configuration
// file, decides: the ConfigMap the file comes from may be edited by people
// who must not become root on the node.
type RunOptions struct {
	// HostKeysSHA256 is the digest of the host keys install wrote
	// (agentconfig.HostKeys); a file whose host keys differ is refused.
	// Empty checks nothing (an agent run by hand trusts its file).
	HostKeysSHA256 string
	// AllowRemoteListen lets listen and metricsAddress name an address
	// other hosts reach; without it only loopback is served.
	AllowRemoteListen bool
}

// check refuses a loaded configuration the command line does not allow.
func (o RunOptions) check(cfg *agentconfig.Config) error {
	if err := cfg.CheckHostKeys(o.HostKeysSHA256); err != nil {
		return err
	}
	if o.AllowRemoteListen {
		return nil
	}
	if err := agentconfig.CheckLoopback("listen", cfg.Listen); err != nil {
		return err
	}
	if cfg.MetricsAddress != "" {
		return agentconfig.CheckLoopback("metricsAddress", cfg.MetricsAddress)
	}
	return nil
}

// serve runs one configuration until ctx ends or the file changes (the
// new configuration is returned with when the scheduler stopped).
// Everything it starts has returned before it does: a reload binds the
// same addresses again, and two shippers of one spool must never run.
func serve(parent context.Context, cfg *agentconfig.Config, sum string, w *configWatch, since time.Time, log *slog.Logger) (*loadedConfig, time.Time, error) {
	srv, err := New(cfg, log)
	if err != nil {
		return nil, time.Time{}, err
	}
	tlsCfg, err := srv.TLSConfig()
	if err != nil {
		return nil, time.Time{}, err
	}
	srv.configSHA = sum
	srv.resumePlans()
	srv.recoverFileRestores()
	srv.sweepDrills()
	// Before the agent serves: no bucket part of its own runs yet.
	srv.sweepDrillBuckets(parent)
	lis, err := listen(parent, cfg.Listen, log)
	if err != nil {
		return nil, time.Time{}, err
	}
	srv.grpcLis = watchAccepts(lis)
	gs := srv.GRPCServer(grpc.Creds(credentials.NewTLS(tlsCfg)))

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// Scheduled runs are not cancelled by a reload (it waits for them),
	// only by the agent shutting down or a reload that waited too long.
	jobCtx, cancelJobs := context.WithCancel(parent)
	defer cancelJobs()
	jobs := append([]schedule.Job{srv.snapshotJob(), srv.filesJob()}, srv.baseBackupJobs()...)
	jobs = append(jobs, srv.bucketJobs()...)
	jobs = append(jobs, srv.drillJob())
	sched, err := schedule.Start(jobCtx, log, since, srv.countBusy(jobs)...)
	if err != nil {
		lis.Close()
		return nil, time.Time{}, err
	}

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	var reload *loadedConfig
	var stopped time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		if next := w.wait(ctx, srv, log); next != nil {
			reload = next
			stopped = srv.drain(sched, gs, cancelJobs, log)
			cancel()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		// Without a reload (shutting down, or a part failed): streams in
		// flight get a few seconds; then the port must be free for the
		// pod that replaces this one. After a drain both return at once.
		t := time.AfterFunc(5*time.Second, gs.Stop)
		gs.GracefulStop()
		t.Stop()
		sched.Stop()
	}()
	if cfg.MetricsAddress != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveMetrics(ctx, cfg.MetricsAddress, srv.healthMux(), log); err != nil {
				errc <- fmt.Errorf("metrics on %s: %w", cfg.MetricsAddress, err)
			}
		}()
	}
	wg.Add(4)
	go func() { defer wg.Done(); srv.runBuckets(ctx) }()
	go func() { defer wg.Done(); srv.metrics.seed(ctx, srv.snapshots, log) }()
	go func() { defer wg.Done(); srv.runShippers(ctx) }()
	go func() { defer wg.Done(); srv.checkStore(ctx) }()
	log.Info("agent serving", "listen", lis.Addr().String(), "dataDir", cfg.DataDir, "store", srv.storeName())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := gs.Serve(srv.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	}()
	var failed error
	for ctx.Err() == nil && failed == nil {
		select {
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				failed = err
			}
		case <-ctx.Done():
		}
	}
	if failed != nil {
		cancelJobs()
		cancel()
	}
	wg.Wait()
	if failed != nil {
		return nil, time.Time{}, failed
	}
	return reload, stopped, nil
}

// drainLimit bounds how long a reload waits for the scheduled runs and
// calls that started after it was decided; past it they are cancelled.
// Restore plans are never cut off: the reload waits for them.
const drainLimit = 10 * time.Minute

// drain stops what serves the old configuration for a reload, in order:
// no new scheduled run (the ones going finish, not cancelled), no new call
// (the ones in flight finish), then the restore plans still running. It
// returns when the scheduler stopped.
func (s *Server) drain(sched *schedule.Scheduler, gs *grpc.Server, cancelJobs func(), log *slog.Logger) time.Time {
	start := time.Now()
	s.draining.Store(start.UnixNano())
	done := make(chan time.Time, 1)
	go func() {
		at := sched.Stop()
		gs.GracefulStop()
		done <- at
	}()
	limit := time.NewTimer(s.health.drainLimit)
	defer limit.Stop()
	tick := time.NewTicker(reloadWaitLog)
	defer tick.Stop()
	var stopped time.Time
	for stopped.IsZero() {
		select {
		case stopped = <-done:
		case <-tick.C:
			log.Info("reload waits for operations in flight", "operations", s.busy.Load(), "waited", time.Since(start).Round(time.Second))
		case <-limit.C:
			log.Warn("reload waited too long for operations in flight: cancelling them", "operations", s.busy.Load(), "waited", time.Since(start).Round(time.Second))
			cancelJobs()
			gs.Stop()
		}
	}
	for {
		select {
		case <-s.busy.Idle():
			return stopped
		case <-tick.C:
			log.Info("reload waits for the restore plan running here", "operations", s.busy.Load(), "waited", time.Since(start).Round(time.Second))
		}
	}
}

// snapshotJob is the automatic etcd snapshot: on the leader's agent only,
// then upload of anything left local, then retention.
func (s *Server) snapshotJob() schedule.Job {
	return schedule.Job{
		Name: "etcd-snapshot",
		Spec: s.cfg.Etcd.Schedule,
		ShouldRun: func(ctx context.Context) (bool, error) {
			switch s.snapshots.Layout.Datastore() {
			case etcdsnap.DatastoreSQLite:
				// A server on SQLite is the cluster's only server.
				return true, nil
			case "":
				return false, nil
			}
			st := etcdmember.Status(ctx, s.snapshots.Client)
			if st.Err != nil {
				return false, st.Err
			}
			return st.Leader(), nil
		},
		Run: func(ctx context.Context) error {
			s.metrics.startSnapshot()
			snap, err := s.snapshots.Save(ctx, etcdsnap.SaveRequest{Name: s.cfg.Etcd.ScheduleName, Scheduled: true})
			s.metrics.observeSnapshot(snap, err)
			if err != nil {
				return err
			}
			if snap.UploadError != "" {
				s.log.Warn("scheduled snapshot kept locally, not uploaded", "snapshot", snap.Name, "err", snap.UploadError)
			} else {
				s.log.Info("scheduled snapshot", "snapshot", snap.Name, "size", snap.Size, "revision", snap.Revision)
				if _, err := s.snapshots.UploadPending(ctx); err != nil {
					s.log.Warn("upload of earlier local snapshots", "err", err)
				}
			}
			res, err := s.snapshots.Prune(ctx, s.cfg.Etcd.ScheduleName, s.cfg.Etcd.Retention, false)
			if err != nil {
				return fmt.Errorf("retention: %w", err)
			}
			if len(res.Removed) > 0 {
				s.log.Info("retention removed snapshots", "removed", res.Removed)
			}
			if len(res.Deferred) > 0 {
				s.log.Info("retention left snapshots in the store: the store refused to delete them (put/get-only node credentials or object lock); kubectl dr prune (or etcd snapshot prune) removes them with the plugin's credentials", "deferred", len(res.Deferred), "first", res.Deferred[0])
			}
			return nil
		},
	}
}

// filesJob is the automatic file backup: every node backs up its own
// paths, then applies the retention to its own scheduled snapshots (restic's
// exclusive lock keeps the prunes to one node at a time).
func (s *Server) filesJob() schedule.Job {
	return schedule.Job{
		Name: "file-backup",
		Spec: s.cfg.Restic.Schedule,
		ShouldRun: func(ctx context.Context) (bool, error) {
			if _, err := s.filesEngine(); err != nil {
				return false, errors.New(status.Convert(err).Message())
			}
			if _, err := s.files.Roots(); err != nil {
				s.log.Debug("scheduled file backup: nothing to back up", "err", err)
				return false, nil
			}
			return true, nil
		},
		Run: func(ctx context.Context) error {
			start := time.Now()
			res, err := s.files.Backup(ctx, files.BackupRequest{Scheduled: true}, nil)
			s.metrics.observeFiles(start, res, err)
			if err != nil {
				return err
			}
			s.log.Info("scheduled file backup", "snapshot", res.Summary.SnapshotID[:8], "files", res.Summary.TotalFilesProcessed, "added", res.Summary.DataAdded)
			if s.cfg.Store.Scoped {
				s.log.Info("file retention left to the plugin: the node's store credentials may not delete (restic forget needs to); kubectl dr prune applies it with the plugin's")
				return nil
			}
			removed, err := s.files.ApplyRetention(ctx, resticPolicy(s.cfg.Restic.Retention, nil))
			if err != nil {
				return fmt.Errorf("file retention: %w", err)
			}
			s.log.Info("file retention applied", "removed", len(removed))
			return nil
		},
	}
}

// listen binds the gRPC address. With hostNetwork, the pod that replaces
// this one can start while the old one still holds the port: wait for it
// rather than crash-looping.
func listen(ctx context.Context, addr string, log *slog.Logger) (net.Listener, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil {
			return lis, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		log.Warn("address in use, waiting for it", "listen", addr)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
