package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// PreviewEtcdRestore fetches and verifies the snapshot into the state dir
// (where a restore on this node takes it from), reads it read-only and
// compares it with the live keys of the local etcd member. The preview's
// digest covers this node's part (restoreplan.Preview); digest_only
// computes just that, for the other servers of a restore.
func (s *Server) PreviewEtcdRestore(req *agentv1.PreviewEtcdRestoreRequest, stream agentv1.AgentService_PreviewEtcdRestoreServer) error {
	ctx := stream.Context()
	if req.GetDigestOnly() {
		snap, err := s.resolveSnapshot(ctx, req.GetSnapshot())
		if err != nil {
			return err
		}
		return stream.Send(&agentv1.PreviewEtcdRestoreResponse{Event: &agentv1.PreviewEtcdRestoreResponse_Preview{Preview: &agentv1.EtcdRestorePreview{
			Snapshot: snapshotProto(snap), Digest: s.restores.previewed(restoreplan.NodePreview(s.cfg, snap.Name, snap.SHA256)),
		}}})
	}
	kind := s.snapshots.Layout.Datastore()
	if kind == "" {
		return status.Errorf(codes.FailedPrecondition, "node %s runs no datastore (%s has no server/db/etcd and no server/db/state.db): preview on a server node", s.cfg.NodeName, s.cfg.DataDir)
	}
	progress := func(phase, msg string) {
		_ = stream.Send(&agentv1.PreviewEtcdRestoreResponse{Event: &agentv1.PreviewEtcdRestoreResponse_Progress{Progress: &agentv1.Progress{Phase: phase, Message: msg}}})
	}
	// A snapshot of the other datastore is refused before it is fetched.
	found, err := s.resolveSnapshot(ctx, req.GetSnapshot())
	if err != nil {
		return err
	}
	if (found.DatastoreKind() == dbsnap.DatastoreSQLite) != (kind == etcdsnap.DatastoreSQLite) {
		return status.Errorf(codes.FailedPrecondition, "snapshot %s is of the %s datastore and node %s keeps its datastore in %s: it cannot restore here; pick a snapshot taken on a server like it", found.Name, found.DatastoreKind(), s.cfg.NodeName, kind)
	}
	id, err := s.requestKey(req.GetSnapshotIdentity())
	if err != nil {
		return err
	}
	snap, path, err := s.fetchForRestore(ctx, &agentv1.SnapshotRef{Name: found.Name, AllowUnsigned: req.GetSnapshot().GetAllowUnsigned()}, id, progress)
	if err != nil {
		return err
	}
	progress("read-snapshot", "reading "+snap.Name)
	contents, err := etcdsnap.SnapshotKeys(path).ReadKeys(ctx)
	if err != nil {
		return failure(codes.DataLoss, agentv1.ReasonChecksumMismatch, "%v", err)
	}
	live, err := s.liveKeys(ctx, kind)
	if err != nil {
		return err
	}
	preview := &agentv1.EtcdRestorePreview{
		Snapshot: snapshotProto(snap), LiveRevision: live.Revision,
		Digest: s.restores.previewed(restoreplan.NodePreview(s.cfg, snap.Name, snap.SHA256)),
	}
	for _, d := range etcdsnap.Diff(contents, live) {
		preview.Impact = append(preview.Impact, &agentv1.ResourceImpact{
			GroupResource: d.GroupResource, Namespace: d.Namespace,
			Disappear: d.Disappear, Reappear: d.Reappear, Change: d.Change, Unchanged: d.Unchanged,
			DisappearNames: d.DisappearNames, ReappearNames: d.ReappearNames, ChangeNames: d.ChangeNames,
		})
	}
	return stream.Send(&agentv1.PreviewEtcdRestoreResponse{Event: &agentv1.PreviewEtcdRestoreResponse_Preview{Preview: preview}})
}

// liveKeys reads the live datastore's keys: the local etcd member's, or
// kine's table in the live state.db (one short read transaction).
func (s *Server) liveKeys(ctx context.Context, kind string) (*etcdsnap.Contents, error) {
	if kind == etcdsnap.DatastoreSQLite {
		live, err := etcdsnap.SQLiteKeys{Path: s.snapshots.Layout.StateDB()}.ReadKeys(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "read the live datastore: %v", err)
		}
		return live, nil
	}
	cli, err := s.snapshots.Client.New()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "local etcd: %v", err)
	}
	defer cli.Close()
	live, err := etcdsnap.LiveContents(ctx, cli)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v: the preview compares with the live cluster, so the local member must answer", err)
	}
	return live, nil
}

// resolveSnapshot finds the snapshot a request names in the store: by
// name, the one of a backup set, or the newest.
func (s *Server) resolveSnapshot(ctx context.Context, ref *agentv1.SnapshotRef) (*dbsnap.Snapshot, error) {
	if s.store == nil {
		return nil, failure(codes.FailedPrecondition, agentv1.ReasonNoStore, "no store configured on this node's agent")
	}
	list, _, err := dbsnap.ListStore(ctx, s.store)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list snapshots in %s: %v", s.store, err)
	}
	name := ref.GetName()
	switch {
	case ref.GetBackupSet() != "":
		set, err := backupset.Verified(ctx, s.store, s.recordPolicy(ref.GetAllowUnsigned()), ref.GetBackupSet())
		if isRecordRefusal(err) {
			return nil, recordStatus(err)
		}
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "%v", err)
		}
		if set.Etcd == nil || set.Etcd.Snapshot == "" {
			return nil, status.Errorf(codes.NotFound, "backup set %s has no etcd snapshot", set.ID)
		}
		name = set.Etcd.Snapshot
	case ref.GetLatest():
		dbsnap.SortNewestFirst(list)
		if len(list) == 0 {
			return nil, status.Errorf(codes.NotFound, "no etcd snapshot in %s", s.store)
		}
		return s.verifiedSnapshot(ctx, list[0], ref.GetAllowUnsigned())
	}
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "name a snapshot, a backup set, or ask for the latest")
	}
	snap, ok := dbsnap.Find(list, name)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no etcd snapshot named %q in %s: `kubectl dr etcd snapshot ls` lists them", name, s.store)
	}
	return s.verifiedSnapshot(ctx, snap, ref.GetAllowUnsigned())
}

// verifiedSnapshot is snap as its signed record says, checked against this
// agent's CA: what a restore, a preview or a drill may trust.
func (s *Server) verifiedSnapshot(ctx context.Context, snap *dbsnap.Snapshot, allowUnsigned bool) (*dbsnap.Snapshot, error) {
	v, _, err := dbsnap.Verified(ctx, s.store, s.recordPolicy(allowUnsigned), snap)
	if err != nil {
		return nil, recordStatus(err)
	}
	return v, nil
}

// isRecordRefusal reports whether err is a record refused by its
// signature or for want of one.
func isRecordRefusal(err error) bool {
	var unsigned *signature.UnsignedError
	return errors.As(err, &unsigned) || errors.Is(err, signature.ErrForged)
}

// recordStatus is the gRPC status of a record refused by its signature
// (or its absence), or of one that could not be read.
func recordStatus(err error) error {
	var unsigned *signature.UnsignedError
	switch {
	case errors.As(err, &unsigned):
		return failure(codes.FailedPrecondition, agentv1.ReasonRecordUnsigned, "%v; nothing was changed", err)
	case errors.Is(err, signature.ErrForged):
		return failure(codes.FailedPrecondition, agentv1.ReasonRecordForged, "%v; nothing was changed", err)
	case errors.Is(err, objstore.ErrNotFound):
		return status.Errorf(codes.NotFound, "%v", err)
	}
	return status.Errorf(codes.Unavailable, "%v", err)
}

// fetchForRestore downloads the snapshot into <stateDir>/restore/, or
// reuses a copy there whose sha256 matches; either way the file has been
// verified against the snapshot's metadata.
// id decrypts it (nil: only an unencrypted snapshot or a verified copy
// already here will do).
func (s *Server) fetchForRestore(ctx context.Context, ref *agentv1.SnapshotRef, id age.Identity, progress func(phase, msg string)) (*dbsnap.Snapshot, string, error) {
	snap, err := s.resolveSnapshot(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	progress("download", fmt.Sprintf("fetching %s (%d bytes) and verifying its sha256", snap.Name, snap.Size))
	path, reused, err := restoreplan.FetchSnapshot(ctx, s.store, snap, id, s.cfg.StateDir)
	if err != nil {
		return nil, "", fetchStatus(err)
	}
	if reused {
		progress("verify", "using the verified copy "+path)
	}
	return snap, path, nil
}

// fetchStatus is the gRPC status of a snapshot that could not be fetched.
func fetchStatus(err error) error {
	if st := noKeyStatus(err); st != nil {
		return st
	}
	if errors.Is(err, dbsnap.ErrChecksum) {
		return failure(codes.DataLoss, agentv1.ReasonChecksumMismatch, "%v: refused, nothing was changed", err)
	}
	return status.Errorf(codes.Unavailable, "%v", err)
}

func (s *Server) plans() restoreplan.Plans { return restoreplan.PlansIn(s.cfg.StateDir) }

// PrepareRestorePlan takes this node's part of a restore before anything
// stops anywhere (restoreplan.Prepare); nothing else happens until
// StartRestorePlan.
func (s *Server) PrepareRestorePlan(ctx context.Context, req *agentv1.PrepareRestorePlanRequest) (*agentv1.PrepareRestorePlanResponse, error) {
	part := req.GetPart()
	if err := previewDigestGiven(part.GetPreviewDigest(), part.GetNoPreview()); err != nil {
		return nil, err
	}
	var err error
	r := restoreplan.Request{
		ID: part.GetPlanId(),
		Flavor: map[agentv1.RestoreFlavor]string{
			agentv1.RestoreFlavor_RESTORE_FLAVOR_ETCD: agentconfig.FlavorEtcd,
			agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S:  agentconfig.FlavorK3s,
		}[part.GetFlavor()],
		Role: map[agentv1.RestoreRole]string{
			agentv1.RestoreRole_RESTORE_ROLE_RESET:  restoreplan.RoleReset,
			agentv1.RestoreRole_RESTORE_ROLE_REJOIN: restoreplan.RoleRejoin,
			agentv1.RestoreRole_RESTORE_ROLE_SQLITE: restoreplan.RoleSQLite,
		}[part.GetRole()],
		SnapshotName: part.GetSnapshot().GetName(), SnapshotSHA256: part.GetSnapshotSha256(),
		MemberName: part.GetMemberName(), PeerURLs: part.GetPeerUrls(),
		InitialCluster: part.GetInitialCluster(), InitialClusterToken: part.GetInitialClusterToken(),
		OtherPeerURLs: part.GetOtherPeerUrls(), ResetClientURLs: part.GetResetClientUrls(),
		PreviewDigest: part.GetPreviewDigest(), Previewed: s.restores.preview(part.GetPreviewDigest()),
		RevisionFloor: part.GetRevisionFloor(),
		PeersWait:     time.Duration(part.GetPeersWaitSeconds()) * time.Second,
	}
	if part.GetNewHost() {
		r.NewHost, r.Bootstrap = true, restoreplan.BootstrapAll
	}
	r.Resolve = func(ctx context.Context) (*dbsnap.Snapshot, error) { return s.resolveSnapshot(ctx, part.GetSnapshot()) }
	// Prepare decrypts all the plan needs before the plan is saved: the
	// key is not kept, and a plan resumed after a restart needs none.
	if r.Identity, err = s.requestKey(req.GetSnapshotIdentity()); err != nil {
		return nil, err
	}
	prepared, err := restoreplan.Prepare(ctx, s.cfg, s.store, r)
	if err != nil {
		return nil, planStatus(err)
	}
	p := prepared.Plan
	return &agentv1.PrepareRestorePlanResponse{SnapshotPath: p.SnapshotPath, Steps: p.StepNames()}, nil
}

// planStatus maps restoreplan's errors to status codes and reasons;
// errors that are statuses already (the snapshot lookup's) pass.
func planStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, restoreplan.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, restoreplan.ErrNotHere):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, restoreplan.ErrPreviewChanged):
		return failure(codes.FailedPrecondition, agentv1.ReasonPreviewChanged, "%v", err)
	case errors.Is(err, restoreplan.ErrBusy):
		return failure(codes.FailedPrecondition, agentv1.ReasonRestoreInProgress, "%v", err)
	case errors.Is(err, restoreplan.ErrAlreadyRan):
		return status.Error(codes.AlreadyExists, err.Error())
	}
	return fetchStatus(err)
}

// StartRestorePlan runs a prepared plan on its own (it goes on when the
// caller goes away) and streams its steps while the caller listens.
func (s *Server) StartRestorePlan(req *agentv1.StartRestorePlanRequest, stream agentv1.AgentService_StartRestorePlanServer) error {
	p, err := s.plans().Load(req.GetPlanId())
	if errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.NotFound, "no restore plan %q on %s: prepare it first", req.GetPlanId(), s.cfg.NodeName)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if u, err := s.plans().Unfinished(); err == nil && u != nil && u.ID != p.ID {
		return failure(codes.FailedPrecondition, agentv1.ReasonRestoreInProgress, "%v: plan %s (snapshot %s) has not finished on %s; plan %s was not started", restoreplan.ErrBusy, u.ID, u.Snapshot, s.cfg.NodeName, p.ID)
	}
	events, cancel := s.restores.subscribe()
	defer cancel()
	done, err := s.startPlan(p)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "%v on %s; plan %s was not started", err, s.cfg.NodeName, p.ID)
	}
	send := func(step restoreplan.Step) error {
		return stream.Send(&agentv1.RestorePlanEvent{PlanId: p.ID, Node: s.cfg.NodeName, Step: stepProto(step)})
	}
	// The runner writes p from here on: read a copy.
	for _, st := range p.Copy().Steps {
		if err := send(st); err != nil {
			return err
		}
	}
	for {
		select {
		case ev := <-events:
			if ev.plan == p.ID {
				if err := send(ev.step); err != nil {
					return err
				}
			}
		case err := <-done:
			// Steps published before the end are in the channel.
		drain:
			for {
				select {
				case ev := <-events:
					if ev.plan == p.ID {
						send(ev.step)
					}
				default:
					break drain
				}
			}
			if err != nil {
				latest, _ := s.plans().Load(p.ID)
				hint := ""
				if latest != nil {
					hint = latest.Hint()
				}
				return status.Errorf(codes.Aborted, "%v; %s", err, hint)
			}
			return nil
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// DiscardRestorePlan drops a prepared plan that never started.
func (s *Server) DiscardRestorePlan(_ context.Context, req *agentv1.DiscardRestorePlanRequest) (*agentv1.DiscardRestorePlanResponse, error) {
	if err := restoreplan.ValidID(req.GetPlanId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.plans().Discard(req.GetPlanId()); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return &agentv1.DiscardRestorePlanResponse{}, nil
}

// RestorePlanStatus reads a plan's state file (the newest when no id).
func (s *Server) RestorePlanStatus(_ context.Context, req *agentv1.RestorePlanStatusRequest) (*agentv1.RestorePlanStatusResponse, error) {
	var p *restoreplan.Plan
	if id := req.GetPlanId(); id != "" {
		var err error
		if p, err = s.plans().Load(id); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
	} else {
		list, err := s.plans().List()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		if len(list) > 0 {
			p = list[0]
		}
	}
	resp := &agentv1.RestorePlanStatusResponse{Node: s.cfg.NodeName}
	if p == nil {
		return resp, nil
	}
	resp.PlanId, resp.Finished, resp.Hint, resp.Started, resp.Snapshot = p.ID, p.Finished(), p.Hint(), p.Started, p.Snapshot
	for _, st := range p.Steps {
		resp.Steps = append(resp.Steps, stepProto(st))
	}
	return resp, nil
}

func stepProto(st restoreplan.Step) *agentv1.RestoreStep {
	ps := &agentv1.RestoreStep{Name: st.Name, Error: st.Error, State: map[string]agentv1.RestoreStep_State{
		restoreplan.Pending: agentv1.RestoreStep_STATE_PENDING, restoreplan.Running: agentv1.RestoreStep_STATE_RUNNING,
		restoreplan.Done: agentv1.RestoreStep_STATE_DONE, restoreplan.Failed: agentv1.RestoreStep_STATE_FAILED,
	}[st.State]}
	if st.Started != nil {
		ps.Started = timestamppb.New(*st.Started)
	}
	if st.Finished != nil {
		ps.Finished = timestamppb.New(*st.Finished)
	}
	return ps
}

// startPlan runs p in the background unless it already runs; the channel
// gets the outcome.
func (s *Server) startPlan(p *restoreplan.Plan) (<-chan error, error) {
	return s.restores.start(p.ID, func() error {
		s.busy.Add(1)
		defer s.busy.Add(-1)
		r := restoreplan.NewRunner(s.cfg, func(p *restoreplan.Plan, st restoreplan.Step) {
			s.log.Info("restore step", "plan", p.ID, "step", st.Name, "state", st.State, "err", st.Error)
			s.restores.publish(p.ID, st)
		})
		r.Gate, r.StartGate = &s.restores.gate, &s.restores.startGate
		// The plan goes on without the caller: the API server is down
		// while it runs, and the plugin may be gone.
		return r.Run(context.Background(), p)
	})
}

// resumePlans takes up a plan the agent was carrying out when it stopped.
func (s *Server) resumePlans() {
	if removed, err := restoreplan.SweepBootstrap(s.cfg.StateDir); err != nil {
		s.log.Error("remove the staged bootstrap files of finished restores", "err", err)
	} else if len(removed) > 0 {
		s.log.Info("removed the staged bootstrap files of finished restores (they held the server token)", "dirs", removed)
	}
	p, err := s.plans().Unfinished()
	if err != nil {
		s.log.Error("read restore plans", "err", err)
		return
	}
	if p != nil {
		s.log.Warn("resuming the restore plan this agent was running", "plan", p.ID, "snapshot", p.Snapshot)
		if _, err := s.startPlan(p); err != nil {
			s.log.Error("resume the restore plan", "plan", p.ID, "err", err)
		}
	}
}

type planEvent struct {
	plan string
	step restoreplan.Step
}

// restoreRuns knows which plans run in this process and who listens, and
// the last previews it gave (to say what changed when a part's digest no
// longer matches).
type restoreRuns struct {
	mu       sync.Mutex
	running  map[string][]chan error
	subs     map[chan planEvent]struct{}
	previews map[string]*restoreplan.Preview
	order    []string
	// gate carries the plugin's word to a plan at its barrier, startGate
	// to a plan held before its start.
	gate, startGate restoreplan.Gate
}

// previewsKept is how many previews restoreRuns remembers.
const previewsKept = 16

// previewed remembers p and returns its digest.
func (r *restoreRuns) previewed(p *restoreplan.Preview) string {
	d := p.Digest()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.previews == nil {
		r.previews = map[string]*restoreplan.Preview{}
	}
	if _, ok := r.previews[d]; !ok {
		r.previews[d] = p
		r.order = append(r.order, d)
		if len(r.order) > previewsKept {
			delete(r.previews, r.order[0])
			r.order = r.order[1:]
		}
	}
	return d
}

// preview is the preview of that digest, nil when forgotten or unknown.
func (r *restoreRuns) preview(digest string) *restoreplan.Preview {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.previews[digest]
}

func (r *restoreRuns) start(id string, run func() error) (<-chan error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running == nil {
		r.running = map[string][]chan error{}
	}
	for other := range r.running {
		if other != id {
			return nil, fmt.Errorf("%w: plan %s runs", restoreplan.ErrBusy, other)
		}
	}
	ch := make(chan error, 1)
	waiters, ok := r.running[id]
	r.running[id] = append(waiters, ch)
	if !ok {
		go func() {
			err := run()
			r.mu.Lock()
			for _, w := range r.running[id] {
				w <- err
			}
			delete(r.running, id)
			r.mu.Unlock()
		}()
	}
	return ch, nil
}

func (r *restoreRuns) subscribe() (chan planEvent, func()) {
	ch := make(chan planEvent, 64)
	r.mu.Lock()
	if r.subs == nil {
		r.subs = map[chan planEvent]struct{}{}
	}
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

func (r *restoreRuns) publish(id string, st restoreplan.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- planEvent{plan: id, step: st}:
		default:
		}
	}
}
