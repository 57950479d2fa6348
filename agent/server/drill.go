package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/drill"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// drillServer serves DrillService: one layer's rehearsal of a recovery
// (agent/internal/drill).
type drillServer struct {
	agentv1.UnimplementedDrillServiceServer
	s *Server
}

// drillEngine is the engine for one drill; id is the snapshot key its
// request brought (nil for a scheduled drill).
func (s *Server) drillEngine(id age.Identity) (*drill.Engine, error) {
	if s.store == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "no store configured on this node's agent")
	}
	records := s.recordPolicy(false)
	e := &drill.Engine{Node: s.cfg.NodeName, StateDir: s.cfg.StateDir, Store: s.store, Identity: id, Log: s.log, Records: &records}
	if f, err := s.filesEngine(); err == nil {
		e.Files = f
	} else {
		e.FilesOff = status.Convert(err).Message()
	}
	if len(s.cfg.Buckets.Sources) > 0 {
		e.Buckets = map[string]objstore.Config{}
		for _, src := range s.cfg.Buckets.Sources {
			e.Buckets[src.Name] = src.Bucket
		}
	}
	return e, nil
}

// sweepDrills removes what drill parts cut short by the agent's death left
// (their scratch PostgreSQL stopped first), before anything new starts.
func (s *Server) sweepDrills() {
	removed, err := drill.Sweep(s.cfg.StateDir)
	for _, d := range removed {
		s.log.Warn("a drill part was cut short: its scratch is removed", "dir", d)
	}
	if err != nil {
		s.log.Error("remove interrupted drills' scratch", "err", err)
	}
}

// sweepDrillBuckets removes the scratch buckets this agent's bucket parts
// cut short by its death left on the sources' endpoints.
func (s *Server) sweepDrillBuckets(ctx context.Context) {
	sources := map[string]objstore.Config{}
	for _, src := range s.cfg.Buckets.Sources {
		sources[src.Name] = src.Bucket
	}
	if len(sources) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	removed, err := drill.SweepBuckets(ctx, s.cfg.NodeName, sources)
	for _, b := range removed {
		s.log.Warn("a drill part was cut short: its scratch bucket is removed", "bucket", b)
	}
	if err != nil {
		s.log.Error("remove interrupted drills' scratch buckets", "err", err)
	}
}

func (d drillServer) RunDrillPart(req *agentv1.RunDrillPartRequest, stream agentv1.DrillService_RunDrillPartServer) error {
	id, err := d.s.requestKey(req.GetSnapshotIdentity())
	if err != nil {
		return err
	}
	e, err := d.s.drillEngine(id)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	if req.GetPart() != nil && !drill.ValidID(req.GetDrillId()) {
		return status.Errorf(codes.InvalidArgument, "drill id %q: use letters, digits, '.', '_' and '-'", req.GetDrillId())
	}
	progress := func(phase, msg string) {
		_ = stream.Send(&agentv1.RunDrillPartResponse{Event: &agentv1.RunDrillPartResponse_Progress{Progress: &agentv1.Progress{Phase: phase, Message: msg}}})
	}
	var res *drill.Result
	switch p := req.GetPart().(type) {
	case *agentv1.RunDrillPartRequest_Etcd:
		snap, rerr := d.s.resolveSnapshot(ctx, p.Etcd.GetSnapshot())
		if rerr != nil {
			return rerr
		}
		if snap.Encrypted() && id == nil {
			return noKeyStatus(fmt.Errorf("%w (snapshot %s is encrypted)", drill.ErrNoKey, snap.Name))
		}
		res, err = e.RunEtcd(ctx, req.GetDrillId(), snap, req.GetKeep(), progress)
	case *agentv1.RunDrillPartRequest_Files:
		f := p.Files
		res, err = e.RunFiles(ctx, req.GetDrillId(), drill.FilesPart{SnapshotID: f.GetSnapshotId(), BackupSet: f.GetBackupSet(), Node: f.GetNode(), ReadDataSubset: f.GetReadDataSubset()}, req.GetKeep(), progress)
	case *agentv1.RunDrillPartRequest_Postgres:
		pg := p.Postgres
		part := drill.PostgresPart{Source: pg.GetSource()}
		records := d.s.recordPolicy(pg.GetAllowUnsigned())
		e.Records = &records
		if t := pg.GetTarget(); t != nil {
			part.Target = t.AsTime()
		}
		for _, c := range pg.GetChecks() {
			part.Checks = append(part.Checks, pgbackup.Check{Name: c.GetName(), Database: c.GetDatabase(), Query: c.GetQuery(), Expect: c.GetExpect(), Timeout: time.Duration(c.GetTimeoutMs()) * time.Millisecond})
		}
		if err := d.s.checkPostgresBinary(ctx, part.Source, part.Target); err != nil {
			return err
		}
		res, err = e.RunPostgres(ctx, req.GetDrillId(), part, req.GetKeep(), progress)
	case *agentv1.RunDrillPartRequest_Bucket:
		b := p.Bucket
		part := drill.BucketPart{Source: b.GetSource(), Sample: b.GetSample()}
		if t := b.GetAt(); t != nil {
			part.At = t.AsTime()
		}
		res, err = e.RunBucket(ctx, req.GetDrillId(), part, req.GetKeep(), progress)
	default:
		return status.Error(codes.InvalidArgument, "name the part to rehearse: etcd, files, postgres or bucket")
	}
	if err != nil {
		return drillStatus(err)
	}
	return stream.Send(&agentv1.RunDrillPartResponse{Event: &agentv1.RunDrillPartResponse_Result{Result: drillResultProto(res)}})
}

// drillStatus is the status of a part that could not start.
func drillStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, drill.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, drill.ErrFilesOff):
		return failure(codes.FailedPrecondition, agentv1.ReasonFilesOff, "%v", err)
	case errors.Is(err, drill.ErrNothing), errors.Is(err, files.ErrNoSnapshot), errors.Is(err, basebackup.ErrNoBaseBackup):
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func drillResultProto(r *drill.Result) *agentv1.DrillPartResult {
	out := &agentv1.DrillPartResult{
		Layer: r.Layer, Name: r.Name, Node: r.Node, Ok: r.OK, Problems: r.Problems,
		Facts: r.Facts, Counts: r.Counts, BytesRestored: r.BytesRestored, FilesRestored: r.FilesRestored, ScratchDir: r.ScratchDir,
	}
	if !r.RecoveryPoint.IsZero() {
		out.RecoveryPoint = timestamppb.New(r.RecoveryPoint)
	}
	for _, st := range r.Steps {
		out.Steps = append(out.Steps, &agentv1.DrillStep{Name: st.Name, Start: timestamppb.New(st.Start), End: timestamppb.New(st.End),
			Ok: st.OK, Detail: st.Detail, Error: st.Error, Restore: st.Restore})
	}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, &agentv1.DrillCheckResult{Name: c.Name, Query: c.Query, Expect: c.Expect, Got: c.Got, Ok: c.OK, Error: c.Error, DurationMs: c.Duration.Milliseconds()})
	}
	return out
}
