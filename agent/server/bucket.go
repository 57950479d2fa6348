package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/buckets"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/schedule"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// bucketRetentionEvery: retention reads a source's whole index and its
// blobs' listing, so it runs after a pass at most this often.
const bucketRetentionEvery = time.Hour

// bucketSources are the configured bucket sources, opened (no I/O yet).
type bucketSources struct {
	engine  *buckets.Engine
	sources map[string]buckets.Source
	cfg     map[string]agentconfig.BucketSource
	// openErr says why a source could not be opened.
	openErr map[string]error

	mu       sync.Mutex
	retained map[string]time.Time
}

func (s *Server) newBuckets() {
	b := &bucketSources{sources: map[string]buckets.Source{}, cfg: map[string]agentconfig.BucketSource{},
		openErr: map[string]error{}, retained: map[string]time.Time{}}
	b.engine = &buckets.Engine{Store: s.store, Recipient: s.snapshots.Recipient,
		SpoolDir: filepath.Join(s.cfg.StateDir, "bucket-spool"), Log: s.log, StillLeads: s.bucketLeader}
	// What an agent killed mid-copy left in its spool (New runs before
	// anything serves, and after the previous configuration stopped).
	if len(s.cfg.Buckets.Sources) > 0 {
		if err := os.RemoveAll(b.engine.SpoolDir); err != nil {
			s.log.Warn("clean the bucket spool", "dir", b.engine.SpoolDir, "err", err)
		}
	}
	for _, src := range s.cfg.Buckets.Sources {
		b.cfg[src.Name] = src
		bucket, err := objstore.OpenBucket(src.Bucket)
		if err != nil {
			b.openErr[src.Name] = err
			continue
		}
		b.sources[src.Name] = buckets.Source{Name: src.Name, Bucket: bucket, Prefix: src.Prefix,
			Concurrency: src.Concurrency, RetentionDays: src.RetentionDays}
	}
	s.buckets = b
}

// bucketLeader reports whether this agent runs bucket passes: its etcd
// member leads.
func (s *Server) bucketLeader(ctx context.Context) (bool, error) {
	if !s.snapshots.Layout.IsEtcdMember() {
		return false, nil
	}
	st := etcdmember.Status(ctx, s.snapshots.Client)
	if st.Err != nil {
		return false, st.Err
	}
	return st.Leader(), nil
}

func (s *Server) bucketSource(name string) (buckets.Source, error) {
	if _, ok := s.buckets.cfg[name]; !ok {
		return buckets.Source{}, failure(codes.NotFound, agentv1.ReasonNoBucketSource, "node %s has no bucket source %q (buckets.sources in the agent config)", s.cfg.NodeName, name)
	}
	if err := s.buckets.openErr[name]; err != nil {
		return buckets.Source{}, failure(codes.FailedPrecondition, "", "bucket source %s: %v", name, err)
	}
	if s.store == nil {
		return buckets.Source{}, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "node %s has no store configured", s.cfg.NodeName)
	}
	return s.buckets.sources[name], nil
}

// bucketPass runs one pass and, when due, retention.
func (s *Server) bucketPass(ctx context.Context, src buckets.Source, wait bool) (buckets.Result, error) {
	if err := durable.MkdirAll(s.buckets.engine.SpoolDir, 0o700); err != nil {
		return buckets.Result{}, fmt.Errorf("bucket spool: %w", err)
	}
	run := s.buckets.engine.TryPass
	if wait {
		run = s.buckets.engine.Pass
	}
	res, err := run(ctx, src)
	if err != nil {
		return res, err
	}
	b := s.buckets
	b.mu.Lock()
	due := time.Since(b.retained[src.Name]) > bucketRetentionEvery
	if due {
		b.retained[src.Name] = time.Now()
	}
	b.mu.Unlock()
	if due {
		n, err := b.engine.Retain(ctx, src.Name, src.RetentionDays)
		if err != nil {
			s.log.Warn("bucket retention", "source", src.Name, "err", err)
		}
		res.RetentionRemoved = n
	}
	if res.Copied+res.Deleted > 0 || res.Resumed {
		s.log.Info("bucket pass", "source", src.Name, "copied", res.Copied, "deleted", res.Deleted,
			"unchanged", res.Unchanged, "bytesUploaded", res.BytesUploaded, "resumed", res.Resumed)
	}
	return res, nil
}

// runBuckets runs the continuous sources until ctx ends: a pass every
// interval on the etcd leader's agent. (MinIO's bucket notifications
// could wake it sooner; listing works on every S3.)
func (s *Server) runBuckets(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for name, c := range s.buckets.cfg {
		if c.Mode != agentconfig.ModeContinuous {
			continue
		}
		src, err := s.bucketSource(name)
		if err != nil {
			s.log.Error("bucket source off", "source", name, "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := c.PassInterval()
			for {
				if ok, err := s.bucketLeader(ctx); err == nil && ok {
					_, err := s.bucketPass(ctx, src, false)
					switch {
					case errors.Is(err, buckets.ErrNotLeader):
						s.log.Info("bucket pass handed over", "source", name, "err", err)
					case err != nil && !errors.Is(err, buckets.ErrBusy) && ctx.Err() == nil:
						s.log.Warn("bucket pass failed", "source", name, "err", err)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(every):
				}
			}
		}()
	}
}

// bucketJobs are the scheduled (cron) sources.
func (s *Server) bucketJobs() []schedule.Job {
	var jobs []schedule.Job
	for name, c := range s.buckets.cfg {
		if c.Mode == agentconfig.ModeContinuous {
			continue
		}
		jobs = append(jobs, schedule.Job{
			Name:      "bucket-" + name,
			Spec:      c.Mode,
			ShouldRun: s.bucketLeader,
			Run: func(ctx context.Context) error {
				src, err := s.bucketSource(name)
				if err != nil {
					return err
				}
				_, err = s.bucketPass(ctx, src, true)
				return err
			},
		})
	}
	return jobs
}

// bucketServer is the agent's BucketService.
type bucketServer struct {
	agentv1.UnimplementedBucketServiceServer
	s *Server
}

func (b *bucketServer) BackupBucket(req *agentv1.BackupBucketRequest, stream agentv1.BucketService_BackupBucketServer) error {
	s := b.s
	src, err := s.bucketSource(req.Source)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	leader, err := s.bucketLeader(ctx)
	if err != nil {
		return failure(codes.Unavailable, "", "node %s cannot tell whether its etcd member leads: %v", s.cfg.NodeName, err)
	}
	if !leader {
		return failure(codes.FailedPrecondition, agentv1.ReasonNotBucketLeader, "node %s does not run bucket passes: its etcd member does not lead; ask the leader's agent", s.cfg.NodeName)
	}
	res, err := s.bucketPass(ctx, src, true)
	if errors.Is(err, buckets.ErrNotLeader) {
		return failure(codes.FailedPrecondition, agentv1.ReasonNotBucketLeader, "bucket source %s on node %s: %v; run bucket backup again", req.Source, s.cfg.NodeName, err)
	}
	if err != nil {
		return failure(codes.Unavailable, "", "bucket source %s: %v", req.Source, err)
	}
	return stream.Send(&agentv1.BackupBucketResponse{Result: passProto(res)})
}

func (b *bucketServer) BucketStatus(ctx context.Context, req *agentv1.BucketStatusRequest) (*agentv1.BucketStatusResponse, error) {
	s := b.s
	if req.Source != "" {
		if _, ok := s.buckets.cfg[req.Source]; !ok {
			return nil, failure(codes.NotFound, agentv1.ReasonNoBucketSource, "node %s has no bucket source %q", s.cfg.NodeName, req.Source)
		}
	}
	leader, _ := s.bucketLeader(ctx)
	resp := &agentv1.BucketStatusResponse{}
	for _, c := range s.cfg.Buckets.Sources {
		if req.Source != "" && c.Name != req.Source {
			continue
		}
		st := s.buckets.engine.Status(c.Name)
		out := &agentv1.BucketSourceStatus{Name: c.Name, Prefix: c.Prefix, Mode: c.Mode, Active: leader,
			Running: st.Running, Backlog: int64(st.Backlog), LastError: st.LastError, RetentionDays: int64(c.RetentionDays)}
		if src, ok := s.buckets.sources[c.Name]; ok {
			out.Bucket = src.Bucket.String()
		} else if err := s.buckets.openErr[c.Name]; err != nil {
			out.LastError = err.Error()
		}
		if !st.LastPass.IsZero() {
			out.LastPass = timestamppb.New(st.LastPass)
			out.Last = passProto(st.Last)
		}
		if !st.ErrorAt.IsZero() {
			out.ErrorTime = timestamppb.New(st.ErrorAt)
		}
		resp.Sources = append(resp.Sources, out)
	}
	return resp, nil
}

func passProto(r buckets.Result) *agentv1.BucketPassResult {
	return &agentv1.BucketPassResult{Source: r.Source, Pass: timestamppb.New(r.Pass), Resumed: r.Resumed,
		Listed: int64(r.Listed), Unchanged: int64(r.Unchanged), Copied: int64(r.Copied), Deleted: int64(r.Deleted),
		BytesRead: r.BytesRead, BytesUploaded: r.BytesUploaded, DurationMs: r.Ended.Sub(r.Started).Milliseconds(),
		RetentionRemoved: int64(r.RetentionRemoved)}
}

// bucketLayer is a bucket source's row in kubectl dr status: the newest
// finished pass (the bucket's recovery point), and the running pass's
// backlog in its name.
func (s *Server) bucketLayer(src agentconfig.BucketSource) *agentv1.LayerStatus {
	l := &agentv1.LayerStatus{Layer: LayerBuckets, Name: src.Name, Leader: true, Schedule: src.Mode,
		RpoTargetSeconds: targetSeconds(src.RPOTarget)}
	if src.Mode != agentconfig.ModeContinuous {
		l.NextRun = nextRun(src.Mode)
	}
	if s.store == nil {
		l.Off = "no store is configured"
		return l
	}
	if err := s.buckets.openErr[src.Name]; err != nil {
		l.Error = oneLine(err.Error())
		return l
	}
	st := s.buckets.engine.Status(src.Name)
	if !st.LastPass.IsZero() {
		l.Newest = timestamppb.New(st.LastPass)
		l.NewestName = fmt.Sprintf("pass, %d copied", st.Last.Copied)
	}
	if st.Running {
		l.NewestName = fmt.Sprintf("pass running, backlog %d", st.Backlog)
	}
	if st.LastError != "" {
		l.LastFailure, l.LastFailureReason = timestamppb.New(st.ErrorAt), oneLine(st.LastError)
	}
	return l
}
