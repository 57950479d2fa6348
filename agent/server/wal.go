package server

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// newShippers makes one shipper per configured WAL source.
func (s *Server) newShippers() {
	if s.store == nil {
		return
	}
	for _, src := range s.cfg.WAL.Sources {
		s.shippers = append(s.shippers, &walship.Shipper{
			Source:   walship.Source{Name: src.Name, Spool: src.Spool, Concurrency: src.Concurrency, LowFreeBytes: src.SpoolWarnFreeBytes},
			Store:    s.store,
			Log:      s.log,
			Observer: s.metrics.wal,
			Node:     s.cfg.NodeName,
			// The snapshots' recipient: WAL is as secret as the datastore.
			Recipient: s.snapshots.Recipient,
		})
	}
}

// runShippers ships every source until ctx ends, and keeps the spool
// gauges and the health checks' view of each shipper current. It returns
// once every shipper's Run has: a reload starts the next shippers of the
// same spools only then.
func (s *Server) runShippers(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, sh := range s.shippers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := sh.Run(ctx); err != nil {
				s.log.Error("wal shipper stopped", "source", sh.Source.Name, "err", err)
			}
		}()
		// The store's view (newest file, gaps) at start and every 5
		// minutes: listing a long archive is not free.
		go func() {
			defer wg.Done()
			t := time.NewTicker(5 * time.Minute)
			defer t.Stop()
			for {
				if a, err := walobj.ListArchived(ctx, s.store, sh.Source.Name); err == nil {
					if a.Newest != "" {
						s.metrics.wal.seed(sh.Source.Name, a.NewestAt)
					}
					s.metrics.wal.gaps.WithLabelValues(sh.Source.Name).Set(float64(len(a.Gaps)))
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if len(s.shippers) == 0 {
		return
	}
	t := time.NewTicker(s.health.walStatusEvery)
	defer t.Stop()
	for {
		for _, sh := range s.shippers {
			st := sh.Status()
			s.metrics.wal.spool(st)
			s.health.noteWAL(st)
		}
		select {
		case <-ctx.Done():
			s.log.Info("stopping the wal shippers: waiting for uploads in flight", "sources", len(s.shippers))
			return
		case <-t.C:
		}
	}
}

// WALStatus reports each source: newest archived segment and its age,
// the spool's backlog and free space, the last error, gaps in the store.
func (s *Server) WALStatus(ctx context.Context, req *agentv1.WALStatusRequest) (*agentv1.WALStatusResponse, error) {
	if s.store == nil && len(s.cfg.WAL.Sources) > 0 {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s ships no WAL: no store is configured", s.cfg.NodeName)
	}
	resp := &agentv1.WALStatusResponse{}
	found := false
	for _, sh := range s.shippers {
		if req.Source != "" && req.Source != sh.Source.Name {
			continue
		}
		found = true
		st := sh.Status()
		out := &agentv1.WALSourceStatus{
			Name: st.Source, SpoolDir: st.Spool,
			BacklogFiles: st.BacklogFiles, BacklogBytes: st.BacklogBytes,
			LastError: st.LastError, SpoolFreeBytes: st.FreeBytes, SpoolLow: st.Low,
			RefusedFiles: int64(st.Refused),
		}
		if !st.LastErrorAt.IsZero() {
			out.LastErrorTime = timestamppb.New(st.LastErrorAt)
		}
		a, err := walobj.ListArchived(ctx, s.store, sh.Source.Name)
		if err != nil {
			if out.LastError == "" {
				out.LastError = "read the archive: " + err.Error()
			}
		} else {
			out.NewestSegment, out.Gaps = a.Newest, a.Gaps
			if !a.NewestAt.IsZero() {
				out.NewestShipped = timestamppb.New(a.NewestAt)
			}
		}
		resp.Sources = append(resp.Sources, out)
	}
	if req.Source != "" && !found {
		return nil, failure(codes.NotFound, agentv1.ReasonNoWALSource, "node %s has no WAL source %q", s.cfg.NodeName, req.Source)
	}
	return resp, nil
}

// walMetrics are the WAL shipping metrics, labelled by source.
type walMetrics struct {
	lastShipped  *prometheus.GaugeVec
	latency      *prometheus.HistogramVec
	failures     *prometheus.CounterVec
	refused      *prometheus.CounterVec
	backlogFiles *prometheus.GaugeVec
	backlogBytes *prometheus.GaugeVec
	freeBytes    *prometheus.GaugeVec
	low          *prometheus.GaugeVec
	gaps         *prometheus.GaugeVec
	rpo          *rpoCollector
}

func newWALMetrics(reg *prometheus.Registry) *walMetrics {
	l := []string{"source"}
	m := &walMetrics{
		lastShipped:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_last_shipped_timestamp_seconds", Help: "Unix time the newest WAL file of the source was stored and verified."}, l),
		latency:      prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dr_wal_ship_latency_seconds", Help: "From a WAL file landing in the spool to durable in the store.", Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, l),
		failures:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dr_wal_upload_failures_total", Help: "WAL uploads that failed (retried with backoff)."}, l),
		refused:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dr_wal_refused_total", Help: "WAL files the archive refused (another database's, or other bytes under a name it holds), once per file; they stay in the spool."}, l),
		backlogFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_spool_backlog_files", Help: "WAL files in the spool not yet shipped."}, l),
		backlogBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_spool_backlog_bytes", Help: "Bytes in the spool not yet shipped."}, l),
		freeBytes:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_spool_free_bytes", Help: "Free space on the spool's file system."}, l),
		low:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_spool_low", Help: "1 when the spool's free space is below spoolWarnFreeBytes: PostgreSQL's archiving will fail when it runs out."}, l),
		gaps:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dr_wal_store_gaps", Help: "WAL segments missing from the store between the source's first and newest (checked every 5 minutes); recovery cannot pass a gap."}, l),
		rpo:          &rpoCollector{last: map[string]time.Time{}, desc: prometheus.NewDesc("dr_wal_rpo_seconds", "Age of the newest WAL file in the store: the database's recovery point.", l, nil)},
	}
	reg.MustRegister(m.lastShipped, m.latency, m.failures, m.refused, m.backlogFiles, m.backlogBytes, m.freeBytes, m.low, m.gaps, m.rpo)
	return m
}

// Shipped implements walship.Observer.
func (m *walMetrics) Shipped(source string, _ int64, latency time.Duration) {
	now := time.Now()
	m.lastShipped.WithLabelValues(source).Set(float64(now.Unix()))
	m.latency.WithLabelValues(source).Observe(latency.Seconds())
	m.seed(source, now)
}

// Failed implements walship.Observer.
func (m *walMetrics) Failed(source string) { m.failures.WithLabelValues(source).Inc() }

// Refused implements walship.Observer.
func (m *walMetrics) Refused(source string) { m.refused.WithLabelValues(source).Inc() }

func (m *walMetrics) seed(source string, t time.Time) {
	m.rpo.mu.Lock()
	if t.After(m.rpo.last[source]) {
		m.rpo.last[source] = t
	}
	m.rpo.mu.Unlock()
}

func (m *walMetrics) spool(st walship.Status) {
	m.backlogFiles.WithLabelValues(st.Source).Set(float64(st.BacklogFiles))
	m.backlogBytes.WithLabelValues(st.Source).Set(float64(st.BacklogBytes))
	m.freeBytes.WithLabelValues(st.Source).Set(float64(st.FreeBytes))
	low := 0.0
	if st.Low {
		low = 1
	}
	m.low.WithLabelValues(st.Source).Set(low)
}

// rpoCollector computes each source's RPO when scraped.
type rpoCollector struct {
	mu   sync.Mutex
	last map[string]time.Time
	desc *prometheus.Desc
}

func (c *rpoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rpoCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for src, t := range c.last {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, time.Since(t).Seconds(), src)
	}
}

// MarkWAL records where each of the node's WAL sources stands: the newest
// file in the store when the backup set was made. Point-in-time recovery
// to the set's time needs WAL up to at least there.
func (s *Server) MarkWAL(ctx context.Context, req *agentv1.MarkWALRequest) (*agentv1.MarkWALResponse, error) {
	resp := &agentv1.MarkWALResponse{}
	for _, sh := range s.shippers {
		a, err := walobj.ListArchived(ctx, s.store, sh.Source.Name)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "WAL source %s: read the archive: %v", sh.Source.Name, err)
		}
		m := &agentv1.WALMark{Source: sh.Source.Name, Segment: a.Newest, Time: timestamppb.Now()}
		if a.Newest != "" {
			if tli, err := strconv.ParseUint(a.Newest[:8], 16, 32); err == nil {
				m.Timeline = uint32(tli)
			}
		}
		// With a connection, the exact position: the database's current
		// LSN at the set's time (its segment is archived later).
		if src, ok := s.walSource(sh.Source.Name); ok && src.Connection != "" {
			if pos, err := pgbackup.CurrentPosition(ctx, src.Connection); err == nil {
				m.Lsn, m.Timeline, m.Time = pos.LSN, pos.Timeline, timestamppb.New(pos.Time)
			} else {
				s.log.Warn("WAL mark without the exact position", "source", src.Name, "err", err)
			}
		}
		resp.Marks = append(resp.Marks, m)
	}
	return resp, nil
}
