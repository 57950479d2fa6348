package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/pgtarget"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
)

// pgRecoveryServer serves PostgresRecoveryService.
type pgRecoveryServer struct {
	agentv1.UnimplementedPostgresRecoveryServiceServer
	s *Server
}

// pgRestoreTarget is the request's recovery target, checked as the plugin
// checks it.
func pgRestoreTarget(req *agentv1.RestorePostgresRequest) (pgtarget.Target, error) {
	t := pgtarget.Target{Timeline: req.Timeline, Exclusive: req.Exclusive, BaseBackup: req.BaseBackup}
	switch x := req.Target.(type) {
	case *agentv1.RestorePostgresRequest_Time:
		t.Kind, t.Time = pgtarget.Time, x.Time.AsTime()
	case *agentv1.RestorePostgresRequest_Latest, nil:
		t.Kind = pgtarget.Latest
	case *agentv1.RestorePostgresRequest_Lsn:
		l, err := pgtarget.ParseLSN(x.Lsn)
		if err != nil {
			return t, err
		}
		t.Kind, t.LSN = pgtarget.AtLSN, l
	case *agentv1.RestorePostgresRequest_Xid:
		t.Kind, t.XID = pgtarget.XID, x.Xid
	case *agentv1.RestorePostgresRequest_Name:
		t.Kind, t.Name = pgtarget.Name, x.Name
	case *agentv1.RestorePostgresRequest_Immediate:
		t.Kind = pgtarget.Immediate
	default:
		return t, fmt.Errorf("recovery target %T: this agent does not know it (upgrade it)", x)
	}
	return t, t.Validate()
}

func planProto(p *pgtarget.Plan) *agentv1.PostgresRestorePlan {
	out := &agentv1.PostgresRestorePlan{
		Target: p.Target.Describe(), BaseBackup: p.Base.ID, BaseBackupWhy: p.Why,
		BaseBackupStartLsn: p.Base.StartLSN, BaseBackupStopLsn: p.Base.StopLSN, BaseBackupStopTime: timestamppb.New(p.Base.StopTime),
		Timeline: p.Timeline, TimelineSetting: p.TimelineSetting,
		Segments: int64(p.Segments), ReplayBytes: p.ReplayBytes, FetchBytes: p.FetchBytes,
		Missing: p.Missing, Blocking: p.Blocking, Open: p.Open, Notes: p.Notes,
	}
	for _, st := range p.Steps {
		s := &agentv1.PostgresReplayStep{Timeline: st.Timeline, BeginLsn: st.Begin.String(), FirstSegment: st.First, LastSegment: st.Last, Segments: int64(st.Segments)}
		if st.End != 0 {
			s.EndLsn = st.End.String()
		}
		out.Steps = append(out.Steps, s)
	}
	for _, s := range p.Settings() {
		out.Settings = append(out.Settings, fmt.Sprintf("%s = '%s'", s.Name, s.Value))
	}
	return out
}

// ListPostgresWAL says per source what the archive holds per timeline.
func (r pgRecoveryServer) ListPostgresWAL(ctx context.Context, req *agentv1.ListPostgresWALRequest) (*agentv1.ListPostgresWALResponse, error) {
	s := r.s
	if s.store == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
	}
	id, err := s.requestKey(req.GetSnapshotIdentity())
	if err != nil {
		return nil, err
	}
	list, _, err := basebackup.List(ctx, s.store, req.Source)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list base backups in %s: %v", s.store, err)
	}
	sources := []string{req.Source}
	if req.Source == "" {
		sources = nil
		objs, err := s.store.List(ctx, "wal/")
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "list WAL in %s: %v", s.store, err)
		}
		seen := map[string]bool{}
		add := func(name string) {
			if name != "" && !seen[name] {
				seen[name] = true
				sources = append(sources, name)
			}
		}
		for _, b := range list {
			add(b.Source)
		}
		for _, o := range objs {
			if rest, ok := strings.CutPrefix(o.Key, "wal/"); ok {
				if i := strings.IndexByte(rest, '/'); i > 0 {
					add(rest[:i])
				}
			}
		}
	}
	out := &agentv1.ListPostgresWALResponse{}
	for _, src := range sources {
		a, err := pgtarget.LoadArchive(ctx, s.store, src, id)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", err)
		}
		var mine []*basebackup.BaseBackup
		for _, b := range list {
			if b.Source == src {
				mine = append(mine, b)
			}
		}
		sum := pgtarget.Summarize(mine, a)
		ps := &agentv1.PostgresWALSource{Source: src, SegmentSize: a.SegmentSize}
		if ps.SegmentSize == 0 {
			ps.SegmentSize = 16 << 20
		}
		if b := sum.FirstRecoverable; b != nil {
			ps.FirstRecoverableBaseBackup, ps.FirstRecoverableLsn, ps.FirstRecoverableTimeline = b.ID, b.StopLSN, b.Timeline
			ps.FirstRecoverableTime = timestamppb.New(b.StopTime)
		}
		for _, t := range sum.Timelines {
			pt := &agentv1.PostgresWALTimeline{Timeline: t.Timeline, Parent: t.Parent, SwitchLsn: t.Switch, HistoryMissing: t.HistoryMissing, PartialFiles: t.PartialFiles, Bytes: t.Bytes}
			for _, r := range t.Ranges {
				pt.Ranges = append(pt.Ranges, &agentv1.PostgresWALRange{First: r.First, Last: r.Last, Segments: r.Segments, LastStored: timestamppb.New(r.LastStored)})
			}
			for _, r := range t.Gaps {
				pt.Gaps = append(pt.Gaps, &agentv1.PostgresWALRange{First: r.First, Last: r.Last, Segments: r.Segments})
			}
			ps.Timelines = append(ps.Timelines, pt)
		}
		out.Sources = append(out.Sources, ps)
	}
	return out, nil
}
