package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
)

// health is what the agent's health endpoints read: results the agent
// gathers anyway (the periodic store check, the shippers' status every few
// seconds), so that a probe costs no store request and no spool listing.
type health struct {
	// How often the store is checked and how long one check may take;
	// failing for storeFailAfter makes it unhealthy.
	storeEvery, storeTimeout, storeFailAfter time.Duration
	// walStuckAfter: segments waiting that long without the shipper
	// shipping one make it unhealthy. walStatusEvery is how often the
	// shippers' status is read.
	walStuckAfter, walStatusEvery time.Duration
	// grpcTimeout bounds the gRPC self-check; drainLimit a reload's wait.
	grpcTimeout, drainLimit time.Duration

	mu    sync.Mutex
	store storeState
	wal   map[string]walState
}

type storeState struct {
	checking     time.Time // when the check under way started
	checked      time.Time // when the last one ended
	err          error     // its error
	failingSince time.Time // first check of the current run of failures
}

type walState struct {
	st walship.Status
	at time.Time
}

func newHealth() *health {
	return &health{
		storeEvery: time.Minute, storeTimeout: 30 * time.Second, storeFailAfter: 3 * time.Minute,
		walStuckAfter: 5 * time.Minute, walStatusEvery: 5 * time.Second,
		grpcTimeout: 2 * time.Second, drainLimit: drainLimit,
		wal: map[string]walState{},
	}
}

func (h *health) noteWAL(st walship.Status) {
	h.mu.Lock()
	h.wal[st.Source] = walState{st: st, at: time.Now()}
	h.mu.Unlock()
}

// checkStore checks the store every storeEvery until ctx ends; the health
// endpoints read the last result.
func (s *Server) checkStore(ctx context.Context) {
	if s.store == nil {
		return
	}
	h := s.health
	t := time.NewTicker(h.storeEvery)
	defer t.Stop()
	for {
		h.mu.Lock()
		h.store.checking = time.Now()
		h.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, h.storeTimeout)
		err := s.store.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		now := time.Now()
		h.store.checking, h.store.checked, h.store.err = time.Time{}, now, err
		switch {
		case err == nil:
			h.store.failingSince = time.Time{}
		case h.store.failingSince.IsZero():
			h.store.failingSince = now
			s.log.Warn("store check failed", "store", s.store.String(), "err", err)
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check is one line of a health answer.
type check struct {
	name   string
	ok     bool
	detail string
}

// checkGRPC tells whether the gRPC server accepts connections: a loopback
// connection must be taken by its accept loop within grpcTimeout. While a
// reload drains the old configuration the server accepts nothing; that
// is healthy for liveness until drainLimit (ready says not serving).
func (s *Server) checkGRPC(ctx context.Context, live bool) check {
	c := check{name: "grpc"}
	if d := s.draining.Load(); d != 0 {
		waited := time.Since(time.Unix(0, d)).Round(time.Second)
		c.detail = fmt.Sprintf("configuration reload under way for %s, waiting for %d operations in flight", waited, s.busy.Load())
		c.ok = live && waited < s.health.drainLimit
		return c
	}
	if s.grpcLis == nil {
		c.detail = "not serving yet"
		return c
	}
	addr := loopback(s.grpcLis.Addr())
	if err := s.grpcLis.probe(ctx, addr, s.health.grpcTimeout); err != nil {
		c.detail = fmt.Sprintf("not accepting connections on %s: %v", addr, err)
		return c
	}
	c.ok, c.detail = true, "accepting connections on "+addr
	return c
}

func (s *Server) checkStoreState() check {
	c := check{name: "store", ok: true}
	if s.store == nil {
		c.detail = "none configured"
		return c
	}
	h := s.health
	h.mu.Lock()
	st := h.store
	h.mu.Unlock()
	now := time.Now()
	switch {
	case !st.checking.IsZero() && now.Sub(st.checking) >= h.storeFailAfter:
		c.ok = false
		c.detail = fmt.Sprintf("%s: a check has not answered for %s", s.store, now.Sub(st.checking).Round(time.Second))
	case st.checked.IsZero():
		c.detail = s.store.String() + ": not checked yet"
	case st.err != nil:
		failing := now.Sub(st.failingSince).Round(time.Second)
		c.ok = failing < h.storeFailAfter
		c.detail = fmt.Sprintf("failing for %s: %v", failing, st.err)
	default:
		c.detail = fmt.Sprintf("%s: checked %s ago", s.store, now.Sub(st.checked).Round(time.Second))
	}
	return c
}

// checkWAL: a shipper is stuck when segments wait in its spool and it has
// shipped none (nor found the spool empty) for walStuckAfter, or when its
// status could not be read for as long (a hung spool file system).
func (s *Server) checkWAL() []check {
	h := s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []check
	now := time.Now()
	for _, sh := range s.shippers {
		c := check{name: "wal shipper " + sh.Source.Name, ok: true}
		ws, ok := h.wal[sh.Source.Name]
		switch {
		case !ok:
			c.detail = "starting"
		case now.Sub(ws.at) >= h.walStuckAfter:
			c.ok = false
			c.detail = fmt.Sprintf("status of spool %s not read for %s", ws.st.Spool, now.Sub(ws.at).Round(time.Second))
		case ws.st.BacklogFiles > 0 && !ws.st.Progress.IsZero() && now.Sub(ws.st.Progress) >= h.walStuckAfter:
			c.ok = false
			c.detail = fmt.Sprintf("no progress for %s with %d segments waiting", now.Sub(ws.st.Progress).Round(time.Second), ws.st.BacklogFiles)
			if ws.st.LastError != "" {
				c.detail += "; last error: " + ws.st.LastError
			}
		default:
			c.detail = fmt.Sprintf("%d segments waiting", ws.st.BacklogFiles)
		}
		out = append(out, c)
	}
	return out
}

// healthMux serves /metrics and the health endpoints:
//
//	/livez   the process and its gRPC server (the liveness probe)
//	/readyz  the gRPC server serves calls (the readiness probe)
//	/healthz all of the above, the store and every WAL shipper
//
// Each answers 200 or 503 with one line per check.
func (s *Server) healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	answer := func(checks func(r *http.Request) []check) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			cs := checks(r)
			var b strings.Builder
			code := http.StatusOK
			for _, c := range cs {
				mark := "[+]"
				if !c.ok {
					mark, code = "[-]", http.StatusServiceUnavailable
				}
				fmt.Fprintf(&b, "%s %s: %s\n", mark, c.name, c.detail)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(code)
			w.Write([]byte(b.String()))
		}
	}
	mux.HandleFunc("/livez", answer(func(r *http.Request) []check {
		return []check{s.checkGRPC(r.Context(), true)}
	}))
	mux.HandleFunc("/readyz", answer(func(r *http.Request) []check {
		return []check{s.checkGRPC(r.Context(), false)}
	}))
	mux.HandleFunc("/healthz", answer(func(r *http.Request) []check {
		return append([]check{s.checkGRPC(r.Context(), false), s.checkStoreState()}, s.checkWAL()...)
	}))
	return mux
}

// loopback is addr with an unspecified IP (a listener on every address)
// replaced by the loopback address.
func loopback(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// acceptWatch is the gRPC listener, telling a probe when its accept loop
// takes a connection.
type acceptWatch struct {
	net.Listener
	mu sync.Mutex
	// accepted is closed and replaced at every accept.
	accepted chan struct{}
}

func watchAccepts(l net.Listener) *acceptWatch {
	return &acceptWatch{Listener: l, accepted: make(chan struct{})}
}

func (a *acceptWatch) Accept() (net.Conn, error) {
	c, err := a.Listener.Accept()
	if err == nil {
		a.mu.Lock()
		close(a.accepted)
		a.accepted = make(chan struct{})
		a.mu.Unlock()
	}
	return c, err
}

// probe connects to addr and waits until the accept loop took a
// connection (this one or one after it), for at most timeout.
func (a *acceptWatch) probe(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a.mu.Lock()
	accepted := a.accepted
	a.mu.Unlock()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	select {
	case <-accepted:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("connected, but the server took no connection in %s", timeout)
	}
}
