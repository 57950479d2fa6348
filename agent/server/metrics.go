package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// metrics are the agent's Prometheus metrics.
type metrics struct {
	reg *prometheus.Registry

	lastSuccess    prometheus.Gauge
	lastDuration   prometheus.Gauge
	lastSize       prometheus.Gauge
	failures       prometheus.Counter
	uploadFailures prometheus.Counter

	filesLastSuccess  prometheus.Gauge
	filesLastDuration prometheus.Gauge
	filesLastBytes    prometheus.Gauge
	filesLastAdded    prometheus.Gauge
	filesFailures     prometheus.Counter

	wal   *walMetrics
	drill *drillMetrics

	mu           sync.Mutex
	newestGood   time.Time
	newestName   string
	snapshotFrom time.Time
	// listed is when the store's snapshots were last read (seed).
	listed time.Time
	// etcdFailure and filesFailure are the last failed runs on this
	// agent, for kubectl dr status.
	etcdFailure  event
	filesNewest  event
	filesFailure event
}

// event is when something happened and one line about it (for
// filesNewest: the snapshot's id).
type event struct {
	at   time.Time
	what string
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_etcd_snapshot_last_success_timestamp_seconds", Help: "Unix time of the last etcd snapshot this agent took and uploaded."})
	m.lastDuration = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_etcd_snapshot_last_duration_seconds", Help: "How long the last etcd snapshot took, upload included."})
	m.lastSize = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_etcd_snapshot_last_size_bytes", Help: "Size of the last etcd snapshot as etcd streamed it."})
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "dr_etcd_snapshot_failures_total", Help: "etcd snapshots that failed (no snapshot taken)."})
	m.uploadFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "dr_etcd_snapshot_upload_failures_total", Help: "etcd snapshots kept locally because the upload failed."})
	rpo := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dr_etcd_snapshot_rpo_seconds",
		Help: "Age of the newest verified etcd snapshot in the store known to this agent (-1: none yet).",
	}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.newestGood.IsZero() {
			return -1
		}
		return time.Since(m.newestGood).Seconds()
	})
	m.filesLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_files_backup_last_success_timestamp_seconds", Help: "Unix time of this node's last successful file backup."})
	m.filesLastDuration = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_files_backup_last_duration_seconds", Help: "How long this node's last file backup took."})
	m.filesLastBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_files_backup_last_bytes", Help: "Bytes the last file backup covered."})
	m.filesLastAdded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "dr_files_backup_last_added_bytes", Help: "New bytes the last file backup added to the repository."})
	m.filesFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "dr_files_backup_failures_total", Help: "File backups on this node that failed."})
	m.wal = newWALMetrics(m.reg)
	m.drill = newDrillMetrics(m.reg)
	m.reg.MustRegister(m.filesLastSuccess, m.filesLastDuration, m.filesLastBytes, m.filesLastAdded, m.filesFailures)
	m.reg.MustRegister(m.lastSuccess, m.lastDuration, m.lastSize, m.failures, m.uploadFailures, rpo,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// startSnapshot marks the start of a snapshot, for its duration.
func (m *metrics) startSnapshot() {
	m.mu.Lock()
	m.snapshotFrom = time.Now()
	m.mu.Unlock()
}

func (m *metrics) observeSnapshot(snap *dbsnap.Snapshot, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.snapshotFrom.IsZero() {
		m.lastDuration.Set(time.Since(m.snapshotFrom).Seconds())
	}
	switch {
	case err != nil:
		m.failures.Inc()
		m.etcdFailure = event{time.Now(), oneLine(err.Error())}
	case !snap.Uploaded:
		m.uploadFailures.Inc()
		m.lastSize.Set(float64(snap.Size))
		m.etcdFailure = event{time.Now(), oneLine("snapshot " + snap.Name + " kept locally, upload failed: " + snap.UploadError)}
	default:
		m.lastSuccess.Set(float64(time.Now().Unix()))
		m.lastSize.Set(float64(snap.Size))
		m.noteGoodLocked(snap.Created, snap.Name)
	}
}

func (m *metrics) noteGoodLocked(t time.Time, name string) {
	if t.After(m.newestGood) {
		m.newestGood, m.newestName = t, name
	}
}

// seed learns the newest snapshot already in the store, so the RPO gauge
// is right after a restart.
func (m *metrics) seed(ctx context.Context, s *etcdsnap.Snapshotter, log *slog.Logger) {
	if s.Store == nil {
		return
	}
	list, skipped, err := dbsnap.ListStore(ctx, s.Store)
	if err != nil {
		log.Warn("read snapshots for metrics", "err", err)
		return
	}
	for _, sk := range skipped {
		log.Warn("unusable record in the store", "key", sk.Key, "err", sk.Reason)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listed = time.Now()
	for _, snap := range list {
		m.noteGoodLocked(snap.Created, snap.Name)
	}
}

// serveMetrics serves h (metrics and health, healthMux) until ctx ends.
func serveMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	log.Info("metrics serving", "listen", lis.Addr().String())
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Close has returned too: the listener is free for the next serve.
	srv.Close()
	return nil
}

func (m *metrics) observeFiles(start time.Time, res *files.BackupResult, err error) {
	m.filesLastDuration.Set(time.Since(start).Seconds())
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.filesFailures.Inc()
		m.filesFailure = event{time.Now(), oneLine(err.Error())}
		return
	}
	m.filesNewest = event{start, res.Summary.SnapshotID}
	m.filesLastSuccess.Set(float64(time.Now().Unix()))
	m.filesLastBytes.Set(float64(res.Summary.TotalBytesProcessed))
	m.filesLastAdded.Set(float64(res.Summary.DataAdded))
}
