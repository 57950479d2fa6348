package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// drillRefresh is how long the newest drill report read from the store is
// believed: drills run by kubectl dr drill reach the metrics through the
// store, within this.
const drillRefresh = 5 * time.Minute

// drillMetrics are the DR drill's gauges, from the newest report in the
// store (kubectl dr drill's and the scheduled ones alike).
type drillMetrics struct {
	mu sync.Mutex
	// store is where the reports are; nil: only the drills run here.
	store   objstore.Store
	read    time.Time
	reading bool
	newest  *drillreport.Report
	success time.Time
}

func newDrillMetrics(reg *prometheus.Registry) *drillMetrics {
	d := &drillMetrics{}
	gauge := func(name, help string, v func(*drillMetrics) float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			d.refresh()
			d.mu.Lock()
			defer d.mu.Unlock()
			return v(d)
		})
	}
	reg.MustRegister(
		gauge("dr_drill_last_success_timestamp_seconds", "Unix time the newest passed DR drill ended (0: none yet).", func(d *drillMetrics) float64 {
			if d.success.IsZero() {
				return 0
			}
			return float64(d.success.Unix())
		}),
		gauge("dr_drill_last_rto_seconds", "RTO the newest DR drill measured (-1: no drill yet).", func(d *drillMetrics) float64 {
			if d.newest == nil {
				return -1
			}
			return d.newest.RTO.Seconds
		}),
		gauge("dr_drill_last_rpo_seconds", "The largest RPO of a layer in the newest DR drill (-1: no drill yet).", func(d *drillMetrics) float64 {
			if d.newest == nil || len(d.newest.RPO) == 0 {
				return -1
			}
			worst := 0.0
			for _, r := range d.newest.RPO {
				worst = max(worst, r.Seconds)
			}
			return worst
		}),
	)
	return d
}

// observe takes a drill this agent ran.
func (d *drillMetrics) observe(r *drillreport.Report) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noteLocked(r)
}

func (d *drillMetrics) noteLocked(r *drillreport.Report) {
	if d.newest == nil || !r.Started.Before(d.newest.Started) {
		d.newest = r
	}
	if r.Passed && r.Ended.After(d.success) {
		d.success = r.Ended
	}
}

// refresh reads the store's reports again in the background when the last
// read is stale; a scrape never waits for the store.
func (d *drillMetrics) refresh() {
	d.mu.Lock()
	if d.store == nil || d.reading || time.Since(d.read) < drillRefresh {
		d.mu.Unlock()
		return
	}
	d.reading = true
	store := d.store
	d.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), layerReadTimeout)
		defer cancel()
		reports, _, err := drillreport.List(ctx, store)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.reading, d.read = false, time.Now()
		if err != nil {
			return
		}
		for _, r := range reports {
			d.noteLocked(r)
		}
	}()
}

// observeDrill takes a drill this agent ran.
func (m *metrics) observeDrill(r *drillreport.Report) { m.drill.observe(r) }
