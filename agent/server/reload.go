package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// configPoll is how often the agent looks at its configuration file. The
// kubelet replaces a ConfigMap volume's files by swapping a symlink, which
// a file watch on the old target misses; reading a small file every few
// seconds does not.
const configPoll = 2 * time.Second

type loadedConfig struct {
	cfg *agentconfig.Config
	sum string
}

// loadConfig loads path and the sha256 of the bytes loaded.
func loadConfig(path string, opts RunOptions) (*agentconfig.Config, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read agent config: %w", err)
	}
	cfg, err := agentconfig.Parse(data, path)
	if err != nil {
		return nil, "", err
	}
	if err := opts.check(cfg); err != nil {
		return nil, "", fmt.Errorf("agent config %s: %w", path, err)
	}
	return cfg, sha(data), nil
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// configWatch notices a changed configuration file.
type configWatch struct {
	path string
	// sum is the version running; bad is the newest that failed to load.
	sum, bad string
	opts     RunOptions
}

// wait returns the new configuration once the file changed to one that
// loads and no operation is in flight, or nil when ctx ends. A file that
// does not load is logged once, shown in Info, and waited past.
func (w *configWatch) wait(ctx context.Context, srv *Server, log *slog.Logger) *loadedConfig {
	t := time.NewTicker(configPoll)
	defer t.Stop()
	var next *loadedConfig
	var waitLogged time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		data, err := os.ReadFile(w.path)
		if err != nil {
			// The kubelet swaps the files in place; a read between two
			// renames is retried on the next tick.
			continue
		}
		sum := sha(data)
		switch {
		case sum == w.sum:
			next = nil
			srv.configErr.Store("")
			continue
		case sum == w.bad:
		case next == nil || next.sum != sum:
			cfg, err := agentconfig.Parse(data, w.path)
			if err == nil {
				if err = w.opts.check(cfg); err != nil {
					err = fmt.Errorf("agent config %s: %w", w.path, err)
				}
			}
			if err != nil {
				w.bad = sum
				srv.configErr.Store(err.Error())
				log.Error("configuration changed but does not load; still running the previous one", "err", err)
				continue
			}
			next = &loadedConfig{cfg: cfg, sum: sum}
			log.Info("configuration changed, reloading when idle", "sha256", sum[:12])
		}
		if next == nil {
			continue
		}
		if n := srv.busy.Load(); n > 0 {
			if waitLogged.IsZero() || time.Since(waitLogged) >= reloadWaitLog {
				log.Info("reload waits for operations in flight", "operations", n)
				waitLogged = time.Now()
			}
			continue
		}
		w.sum = sum
		return next
	}
}

// reloadWaitLog is how often a reload that waits says so.
const reloadWaitLog = 30 * time.Second

// busyCounter counts operations in flight (calls, scheduled runs, restore
// plans), so a reload never cuts one off.
type busyCounter struct {
	mu sync.Mutex
	n  int64
	// idle is closed while n is 0.
	idle chan struct{}
}

func (b *busyCounter) Add(d int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	was := b.n
	b.n += d
	switch {
	case was == 0 && b.n > 0:
		b.idle = make(chan struct{})
	case was > 0 && b.n == 0:
		close(b.idle)
	}
}

func (b *busyCounter) Load() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Idle is closed once no operation is in flight.
func (b *busyCounter) Idle() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.idle
}

func (b *busyCounter) init() {
	if b.idle == nil {
		b.idle = make(chan struct{})
		if b.n == 0 {
			close(b.idle)
		}
	}
}

func (s *Server) unaryBusy(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.busy.Add(1)
	defer s.busy.Add(-1)
	return h(ctx, req)
}

func (s *Server) streamBusy(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	s.busy.Add(1)
	defer s.busy.Add(-1)
	return h(srv, ss)
}

// countBusy makes the scheduled jobs count as operations in flight.
func (s *Server) countBusy(jobs []schedule.Job) []schedule.Job {
	for i := range jobs {
		run := jobs[i].Run
		jobs[i].Run = func(ctx context.Context) error {
			s.busy.Add(1)
			defer s.busy.Add(-1)
			return run(ctx)
		}
	}
	return jobs
}

// CheckStore writes, reads back and deletes a small object in the store.
func (s *Server) CheckStore(ctx context.Context, _ *agentv1.CheckStoreRequest) (*agentv1.CheckStoreResponse, error) {
	if s.store == nil {
		return &agentv1.CheckStoreResponse{Error: "no store configured in the agent's config (store.url)"}, nil
	}
	start := time.Now()
	access, err := objstore.Probe(ctx, s.store)
	resp := &agentv1.CheckStoreResponse{Store: s.store.String(), DurationMs: time.Since(start).Milliseconds(), Scoped: err == nil && !access.CanDelete}
	if err != nil {
		resp.Error = err.Error()
	}
	return resp, nil
}
