package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/files"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/nodeid"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Server implements dr.agent.v1.AgentService.
type Server struct {
	agentv1.UnimplementedAgentServiceServer

	cfg       *agentconfig.Config
	log       *slog.Logger
	pvs       pvClient
	snapshots *etcdsnap.Snapshotter
	metrics   *metrics
	// store is the cluster's directory of the store; nil without one.
	store objstore.Store
	// files is nil when file backups are off, filesOff says why.
	files    *files.Engine
	filesOff string
	shippers []*walship.Shipper
	buckets  *bucketSources

	resticMu      sync.Mutex
	resticVersion string    // set once a probe succeeded
	resticFailed  time.Time // when the last probe failed

	// configSHA is the configuration file's sha256; configErr why a newer
	// version of it did not load.
	configSHA string
	configErr atomic.Value
	busy      busyCounter
	restores  *restoreRuns

	health  *health
	grpcLis *acceptWatch
	// identity is the node's key and certificate (nodeid), loaded once.
	identityOnce sync.Once
	identity     *nodeid.Identity
	identityErr  error
	// draining is when a reload started draining (unix ns), 0 if none.
	draining atomic.Int64
	// pgLocks keeps each WAL source's base backups and prunes one at a
	// time (source name -> *sync.Mutex).
	pgLocks sync.Map
	// layerCache keeps what Info read about each layer's newest point.
	layerCache layerCache
}

// New returns the service for one node. It opens the store (no I/O yet)
// and reads the snapshot key's public recipient.
func New(cfg *agentconfig.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, metrics: newMetrics(), restores: &restoreRuns{}, health: newHealth(), pvs: pvClient{apiServer: cfg.APIServer}}
	e := cfg.Etcd
	s.snapshots = &etcdsnap.Snapshotter{
		Node:      cfg.NodeName,
		Layout:    etcdsnap.Layout{DataDir: cfg.DataDir},
		Client:    etcdmember.ClientConfig{Endpoint: e.Endpoint, CA: e.CA, Cert: e.Cert, Key: e.Key},
		ClusterID: cfg.ClusterID,
		StateDir:  cfg.StateDir,
	}
	s.snapshots.Signer = s.recordSigner
	if cfg.Store.URL != "" {
		if cfg.ClusterID == "" {
			return nil, errors.New("a store is configured but no clusterID: set clusterID (the kube-system namespace's UID) in the agent config")
		}
		store, err := objstore.Open(cfg.Store)
		if err != nil {
			return nil, err
		}
		s.store = store.Sub(cfg.ClusterID)
		s.snapshots.Store = s.store
		s.metrics.drill.store = s.store
	}
	var err error
	if s.files, s.filesOff, err = s.newFiles(cfg, s.store); err != nil {
		return nil, err
	}
	if s.snapshots.Recipient, err = snapshotRecipient(e, log); err != nil {
		return nil, err
	}
	// WAL is encrypted to the snapshots' recipient.
	s.newShippers()
	s.newBuckets()
	return s, nil
}

// Info answers who the node is and how its etcd member is doing.
func (s *Server) Info(ctx context.Context, req *agentv1.InfoRequest) (*agentv1.InfoResponse, error) {
	layout := etcdsnap.Layout{DataDir: s.cfg.DataDir}
	host, _ := os.Hostname()
	resp := &agentv1.InfoResponse{
		NodeName:      s.cfg.NodeName,
		AgentVersion:  buildinfo.Get().Version,
		ResticVersion: s.restic(ctx),
		DataDir:       s.cfg.DataDir,
		Time:          timestamppb.Now(),
		Hostname:      host,
		GoVersion:     runtime.Version(),
		Etcd:          &agentv1.EtcdMemberHealth{Endpoint: s.snapshots.Client.Endpoint},
		ClusterId:     s.cfg.ClusterID,
		ConfigSha256:  s.configSHA,
		RestoreFlavor: s.cfg.Restore.Flavor,
	}
	if e, _ := s.configErr.Load().(string); e != "" {
		resp.ConfigError = e
	}
	if s.snapshots.Recipient != nil {
		resp.SnapshotEncryption = "age"
	}
	if s.snapshots.Store != nil {
		resp.Store = s.snapshots.Store.String()
	}
	resp.Datastore = layout.Datastore()
	if layout.IsServer() {
		resp.Roles = append(resp.Roles, agentv1.NodeRole_NODE_ROLE_SERVER)
	} else {
		resp.Roles = append(resp.Roles, agentv1.NodeRole_NODE_ROLE_AGENT)
	}
	// While a restore runs here the member is down or on its way there:
	// say so at once instead of waiting for etcd to time out, so that a
	// second restore is told about the first without delay.
	if p, err := s.plans().Unfinished(); err == nil && p != nil {
		resp.Roles = append(resp.Roles, agentv1.NodeRole_NODE_ROLE_ETCD)
		resp.Etcd = &agentv1.EtcdMemberHealth{Member: true, Endpoint: s.snapshots.Client.Endpoint,
			Error: fmt.Sprintf("restore plan %s (snapshot %s) is in progress on this node; etcd is not asked until it finishes", p.ID, p.Snapshot)}
		if req.Layers {
			resp.Layers = s.layers(ctx, true, false)
		}
		return resp, nil
	}
	if layout.IsEtcdMember() {
		resp.Roles = append(resp.Roles, agentv1.NodeRole_NODE_ROLE_ETCD)
		resp.Etcd = memberHealth(etcdmember.Status(ctx, s.snapshots.Client))
	}
	if req.Layers {
		// A server on SQLite is the cluster's only one: it takes the
		// snapshots, as an etcd leader does.
		resp.Layers = s.layers(ctx, layout.Datastore() != "", resp.Etcd.Leader || layout.IsSQLite())
	}
	return resp, nil
}

// resticRetry is how long a failed restic probe is believed before the
// binary is asked again.
const resticRetry = 30 * time.Second

// restic asks the binary for its version until it answers once; a missing
// or failing binary is reported, not fatal, and asked again later (a
// probe that failed during a busy start must not stay "unavailable").
func (s *Server) restic(ctx context.Context) string {
	s.resticMu.Lock()
	defer s.resticMu.Unlock()
	if s.resticVersion != "" {
		return s.resticVersion
	}
	if !s.resticFailed.IsZero() && time.Since(s.resticFailed) < resticRetry {
		return "unavailable"
	}
	v, err := restic.Version(ctx, s.cfg.Restic.Binary)
	if err != nil {
		s.log.Warn("restic not usable", "binary", s.cfg.Restic.Binary, "err", err)
		s.resticFailed = time.Now()
		return "unavailable"
	}
	s.resticVersion = v
	return v
}

func memberHealth(st etcdmember.MemberStatus) *agentv1.EtcdMemberHealth {
	h := &agentv1.EtcdMemberHealth{
		Member:      true,
		Healthy:     st.Healthy,
		Endpoint:    st.Endpoint,
		MemberId:    etcdmember.HexID(st.MemberID),
		MemberName:  st.MemberName,
		Leader:      st.Leader(),
		LeaderId:    etcdmember.HexID(st.LeaderID),
		Version:     st.Version,
		DbSizeBytes: st.DBSize,
		Revision:    st.Revision,
		RaftTerm:    st.RaftTerm,
		RaftIndex:   st.RaftIndex,
		ClusterId:   etcdmember.HexID(st.ClusterID),
		PeerUrls:    st.PeerURLs,
		ClientUrls:  st.ClientURLs,
	}
	if st.Err != nil {
		h.Error = st.Err.Error()
	}
	return h
}
