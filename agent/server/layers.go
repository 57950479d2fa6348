package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Layer names in LayerStatus.
const (
	LayerEtcd  = "etcd"
	LayerFiles = "files"
	LayerWAL   = "wal"
	// LayerBuckets rows come from the agent that runs the passes (its etcd
	// member leads).
	LayerBuckets = "buckets"
)

// layerRefresh is how long the store's (or restic's) answer about a
// layer's newest point is believed before Info reads it again: status is
// asked often, listing a store is not free. What this agent takes or
// ships itself is known at once.
const layerRefresh = 5 * time.Minute

// layerReadTimeout bounds one such read, so status never hangs on a slow
// store.
const layerReadTimeout = 10 * time.Second

// layerCache is what Info last read from the store and restic.
type layerCache struct {
	mu         sync.Mutex
	files      event // newest restic snapshot of this node
	filesErr   string
	filesAt    time.Time
	wal        map[string]walobj.Archived
	walErr     map[string]string
	walAt      map[string]time.Time
	walRefresh sync.Mutex
}

// layers reports each layer of this node. leader says whether the local
// etcd member leads (member: whether there is one).
func (s *Server) layers(ctx context.Context, member, leader bool) []*agentv1.LayerStatus {
	var out []*agentv1.LayerStatus
	if member {
		out = append(out, s.etcdLayer(ctx, leader))
	}
	out = append(out, s.filesLayer(ctx))
	for _, src := range s.cfg.WAL.Sources {
		out = append(out, s.walLayer(ctx, src))
	}
	if leader {
		for _, src := range s.cfg.Buckets.Sources {
			out = append(out, s.bucketLayer(src))
		}
	}
	return out
}

func (s *Server) etcdLayer(ctx context.Context, leader bool) *agentv1.LayerStatus {
	l := &agentv1.LayerStatus{Layer: LayerEtcd, Leader: leader, Schedule: s.cfg.Etcd.Schedule,
		RpoTargetSeconds: targetSeconds(s.cfg.Etcd.RPOTarget)}
	if s.snapshots.Store == nil {
		l.Off = "no store is configured"
		return l
	}
	l.NextRun = nextRun(s.cfg.Etcd.Schedule)
	m := s.metrics
	m.mu.Lock()
	stale := time.Since(m.listed) > layerRefresh
	m.mu.Unlock()
	if stale {
		rctx, cancel := context.WithTimeout(ctx, layerReadTimeout)
		m.seed(rctx, s.snapshots, s.log)
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listed.IsZero() && m.newestGood.IsZero() {
		l.Error = "could not read the store's snapshots (see the agent's log)"
	}
	if !m.newestGood.IsZero() {
		l.Newest, l.NewestName = timestamppb.New(m.newestGood), m.newestName
	}
	if f := m.etcdFailure; !f.at.IsZero() {
		l.LastFailure, l.LastFailureReason = timestamppb.New(f.at), f.what
	}
	return l
}

func (s *Server) filesLayer(ctx context.Context) *agentv1.LayerStatus {
	l := &agentv1.LayerStatus{Layer: LayerFiles, Schedule: s.cfg.Restic.Schedule,
		RpoTargetSeconds: targetSeconds(s.cfg.Restic.RPOTarget)}
	if s.files == nil {
		l.Off = s.filesOff
		l.RpoTargetSeconds = 0
		return l
	}
	l.NextRun = nextRun(s.cfg.Restic.Schedule)
	c := &s.layerCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.filesAt) > layerRefresh {
		rctx, cancel := context.WithTimeout(ctx, layerReadTimeout)
		snaps, err := s.files.Repo.Snapshots(rctx, files.TagNode+s.cfg.NodeName)
		cancel()
		c.filesAt, c.filesErr = time.Now(), ""
		switch {
		case err != nil && !strings.Contains(err.Error(), "does not exist"):
			c.filesErr = oneLine("list restic snapshots: " + err.Error())
		case err == nil:
			for _, sn := range snaps {
				if sn.Hostname == s.cfg.NodeName && sn.Time.After(c.files.at) {
					c.files = event{sn.Time, sn.ShortID}
				}
			}
		}
	}
	newest := c.files
	m := s.metrics
	m.mu.Lock()
	if m.filesNewest.at.After(newest.at) {
		newest = m.filesNewest
		if len(newest.what) > 8 {
			newest.what = newest.what[:8]
		}
	}
	failed := m.filesFailure
	m.mu.Unlock()
	if !newest.at.IsZero() {
		l.Newest, l.NewestName = timestamppb.New(newest.at), newest.what
	}
	if !failed.at.IsZero() {
		l.LastFailure, l.LastFailureReason = timestamppb.New(failed.at), failed.what
	}
	l.Error = c.filesErr
	return l
}

func (s *Server) walLayer(ctx context.Context, src agentconfig.WALSource) *agentv1.LayerStatus {
	l := &agentv1.LayerStatus{Layer: LayerWAL, Name: src.Name, Schedule: "continuous",
		RpoTargetSeconds: targetSeconds(src.RPOTarget)}
	if s.store == nil {
		l.Off, l.RpoTargetSeconds = "no store is configured", 0
		return l
	}
	c := &s.layerCache
	c.walRefresh.Lock()
	c.mu.Lock()
	if c.wal == nil {
		c.wal, c.walErr, c.walAt = map[string]walobj.Archived{}, map[string]string{}, map[string]time.Time{}
	}
	stale := time.Since(c.walAt[src.Name]) > layerRefresh
	c.mu.Unlock()
	if stale {
		rctx, cancel := context.WithTimeout(ctx, layerReadTimeout)
		a, err := walobj.ListArchived(rctx, s.store, src.Name)
		cancel()
		c.mu.Lock()
		c.walAt[src.Name], c.walErr[src.Name] = time.Now(), ""
		if err != nil {
			c.walErr[src.Name] = oneLine("read the archive: " + err.Error())
		} else {
			c.wal[src.Name] = a
			if a.Newest != "" {
				s.metrics.wal.seed(src.Name, a.NewestAt)
			}
		}
		c.mu.Unlock()
	}
	c.walRefresh.Unlock()
	c.mu.Lock()
	a, rerr := c.wal[src.Name], c.walErr[src.Name]
	c.mu.Unlock()
	// The shipper knows what it stored since the listing.
	r := s.metrics.wal.rpo
	r.mu.Lock()
	newest := r.last[src.Name]
	r.mu.Unlock()
	name := a.Newest
	for _, sh := range s.shippers {
		if sh.Source.Name != src.Name {
			continue
		}
		st := sh.Status()
		if st.NewestLocal != "" && !st.ShippedAt.Before(newest) {
			name = st.NewestLocal
		}
		if !st.LastErrorAt.IsZero() {
			l.LastFailure, l.LastFailureReason = timestamppb.New(st.LastErrorAt), oneLine(st.LastError)
		}
		// Nothing waiting in the spool, seen just now: everything
		// PostgreSQL archived is in the store, so an idle database is
		// as recent as that look, however old its newest segment.
		if !newest.IsZero() && st.BacklogFiles == 0 && st.Progress.After(newest) {
			newest = st.Progress
		}
	}
	if !newest.IsZero() {
		l.Newest, l.NewestName = timestamppb.New(newest), name
	}
	l.Error = rerr
	return l
}

func targetSeconds(v string) int64 { return int64(agentconfig.Target(v) / time.Second) }

func nextRun(spec string) *timestamppb.Timestamp {
	if spec == "off" || spec == "" {
		return nil
	}
	sched, err := agentconfig.ParseSchedule(spec)
	if err != nil {
		return nil
	}
	return timestamppb.New(sched.Next(time.Now()))
}

// oneLine is the first line of msg, at most 200 characters.
func oneLine(msg string) string {
	msg, _, _ = strings.Cut(strings.TrimSpace(msg), "\n")
	if len(msg) > 200 {
		msg = msg[:197] + "..."
	}
	return msg
}
