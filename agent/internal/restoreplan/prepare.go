package restoreplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Errors Prepare returns, for adapters to map (agent/server to status
// codes, the node-local CLI to messages).
var (
	// ErrInvalid: the request itself is wrong (ids, missing fields).
	ErrInvalid = errors.New("invalid restore request")
	// ErrNotHere: this node cannot run that part (flavour, data dir,
	// host commands).
	ErrNotHere = errors.New("this node cannot run the restore")
	// ErrAlreadyRan: a plan of that id was started here before.
	ErrAlreadyRan = errors.New("the plan already ran")
)

// PreparedHold is how long a prepared plan that has not started holds the
// node against another restore (the plugin starts every part right after
// preparing them all).
const PreparedHold = 2 * time.Minute

// Bootstrap says which of the files kept with a snapshot a node-local
// restore onto a new host puts back.
type Bootstrap int

const (
	BootstrapNone  Bootstrap = iota
	BootstrapToken           // the server token only (--token-from-store)
	BootstrapAll             // the token and the encryption config (--new-host)
)

// Request is one node's part of a restore, whoever asks for it (the
// plugin through the agent's RPC, or dr-agent etcd restore on the node).
type Request struct {
	ID string
	// Flavor must be the node's restore.flavor.
	Flavor string
	// Role is the k3s flavour's part: RoleReset or RoleRejoin.
	Role string
	// Single: this server restores alone (dr-agent etcd restore); the
	// k3s flavour then does not wait for peers.
	Single bool
	// NewHost: the server is a new host with no member yet (kubectl dr
	// recover): its data dir is needed, not a member's; the reset server
	// does not wait for peers (none runs), and every server gets the
	// bootstrap files (Bootstrap) put back after its stop.
	NewHost bool
	// RevisionFloor is RestorePlanPart.revision_floor (etcd flavour).
	RevisionFloor int64
	// PeersWait bounds the k3s flavour's waits on the other servers
	// (wait-peers-stopped, wait-reset-server); 0: PeersLimit.
	PeersWait time.Duration
	// Resolve finds the snapshot to restore; it is called once the node is
	// known to be free (a rejoining server takes none: SnapshotName only).
	// SnapshotSHA256, when set, must match what it finds.
	Resolve func(context.Context) (*dbsnap.Snapshot, error)
	// Identity decrypts the snapshot and its bootstrap files (nil: the
	// snapshot must be unencrypted). It is used while the plan is prepared
	// and never written: everything it decrypts is staged before the plan
	// is saved, so a plan resumed after a restart needs no key.
	Identity       age.Identity
	SnapshotName   string
	SnapshotSHA256 string
	// The etcd flavour's member.
	MemberName, InitialCluster, InitialClusterToken string
	PeerURLs                                        []string
	// OtherPeerURLs (reset) and ResetClientURLs (rejoin) for k3s.
	OtherPeerURLs, ResetClientURLs []string
	Bootstrap                      Bootstrap
	// PreviewDigest, when set, is the digest of this node's preview the
	// user confirmed (Preview.Digest): Prepare refuses with
	// ErrPreviewChanged, before it fetches or writes anything, unless the
	// part still gives it. Previewed is that preview if the caller still
	// holds it, to say what changed.
	PreviewDigest string
	Previewed     *Preview
}

var planIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidID checks a plan id (it names a state file).
func ValidID(id string) error {
	if !planIDRE.MatchString(id) {
		return fmt.Errorf("%w: plan id %q: lower-case letters, digits and '-'", ErrInvalid, id)
	}
	return nil
}

// Build checks the request against this node's configuration and returns
// the plan with its steps, pending. It reads nothing from the store and
// writes nothing: a preview shows its steps.
func Build(cfg *agentconfig.Config, req Request) (*Plan, error) {
	if err := ValidID(req.ID); err != nil {
		return nil, err
	}
	if req.Flavor != cfg.Restore.Flavor {
		return nil, fmt.Errorf("%w: node %s restores the %s way (restore.flavor), the plan asks for %q", ErrNotHere, cfg.NodeName, cfg.Restore.Flavor, req.Flavor)
	}
	if req.Single || req.NewHost {
		// A new host may have no member yet; it needs k3s's data dir.
		if _, err := os.Stat(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("%w: data dir %s: %v (give --data-dir)", ErrNotHere, cfg.DataDir, err)
		}
	} else if req.Role == RoleSQLite {
		if db := (etcdsnap.Layout{DataDir: cfg.DataDir}).StateDB(); !etcdsnap.IsSQLiteFile(db) {
			return nil, fmt.Errorf("%w: node %s has no SQLite datastore at %s", ErrNotHere, cfg.NodeName, db)
		}
	} else if _, err := os.Stat(cfg.Restore.EtcdDataDir); err != nil {
		return nil, fmt.Errorf("%w: node %s has no etcd data dir at %s (restore.etcdDataDir): not an etcd member", ErrNotHere, cfg.NodeName, cfg.Restore.EtcdDataDir)
	}
	p := &Plan{
		ID: req.ID, Node: cfg.NodeName, Flavor: req.Flavor, Created: time.Now().UTC(),
		Member: Member{DataDir: cfg.Restore.EtcdDataDir}, PeersWait: req.PeersWait,
	}
	if req.PeersWait < 0 {
		return nil, fmt.Errorf("%w: the wait on the other servers is %s: want a positive duration", ErrInvalid, req.PeersWait)
	}
	var steps []string
	switch {
	case req.Flavor == agentconfig.FlavorEtcd:
		if req.Bootstrap != BootstrapNone {
			return nil, fmt.Errorf("%w: --new-host and --token-from-store put k3s's files back: the etcd flavour has none", ErrInvalid)
		}
		if len(cfg.Restore.StopCommand) == 0 || len(cfg.Restore.StartCommand) == 0 {
			return nil, fmt.Errorf("%w: node %s: the etcd flavour needs restore.stopCommand and restore.startCommand (how etcd is stopped and started here)", ErrNotHere, cfg.NodeName)
		}
		if req.MemberName == "" || len(req.PeerURLs) == 0 || req.InitialCluster == "" {
			return nil, fmt.Errorf("%w: the plan names no member, peer URLs or initial cluster", ErrInvalid)
		}
		p.Member = Member{
			Name: req.MemberName, DataDir: cfg.Restore.EtcdDataDir, PeerURLs: req.PeerURLs,
			InitialCluster: req.InitialCluster, InitialClusterToken: req.InitialClusterToken,
			RevisionBump: KubernetesRevisionBump, RevisionFloor: req.RevisionFloor,
		}
		steps = []string{StepVerify, StepStop, StepRestore, StepStart, StepHealthy}
	case req.Role == RoleSQLite:
		if req.Flavor != agentconfig.FlavorK3s {
			return nil, fmt.Errorf("%w: a SQLite datastore is k3s's; node %s restores the %s way", ErrNotHere, cfg.NodeName, req.Flavor)
		}
		if (etcdsnap.Layout{DataDir: cfg.DataDir}).IsEtcdMember() {
			return nil, fmt.Errorf("%w: node %s runs an etcd member (%s): its datastore is etcd, not SQLite", ErrNotHere, cfg.NodeName, cfg.Restore.EtcdDataDir)
		}
		p.Role, p.K3sDataDir = RoleSQLite, cfg.DataDir
		if req.Bootstrap != BootstrapNone {
			steps = []string{StepVerify, StepStop, StepBootstrap, StepSwapStateDB, StepStart, StepHealthy}
		} else {
			steps = []string{StepVerify, StepStop, StepSwapStateDB, StepStart, StepHealthy}
		}
	case req.Role == RoleReset:
		if !req.Single && !InContainer() {
			if _, err := os.Stat(cfg.Restore.K3sBinary); err != nil {
				return nil, fmt.Errorf("%w: node %s: no k3s binary at %s (restore.k3sBinary): %v", ErrNotHere, cfg.NodeName, cfg.Restore.K3sBinary, err)
			}
		}
		p.Role, p.K3sDataDir, p.OtherPeerURLs = RoleReset, cfg.DataDir, req.OtherPeerURLs
		switch {
		case (req.Single || req.NewHost) && req.Bootstrap != BootstrapNone:
			steps = []string{StepVerify, StepStop, StepBootstrap, StepClusterReset, StepStart, StepHealthy}
		case req.Single || req.NewHost:
			steps = []string{StepVerify, StepStop, StepClusterReset, StepStart, StepHealthy}
		default:
			steps = []string{StepVerify, StepStop, StepWaitPeersStopped, StepClusterReset, StepStart, StepHealthy}
		}
	case req.Role == RoleRejoin:
		if len(req.ResetClientURLs) == 0 {
			return nil, fmt.Errorf("%w: a rejoining server's part names no client URL of the reset server", ErrInvalid)
		}
		p.Role, p.K3sDataDir, p.ResetClientURLs = RoleRejoin, cfg.DataDir, req.ResetClientURLs
		p.Snapshot = req.SnapshotName
		if req.Bootstrap != BootstrapNone {
			steps = []string{StepStop, StepBootstrap, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy}
		} else {
			steps = []string{StepStop, StepWaitResetServer, StepMoveAside, StepStart, StepHealthy}
		}
	default:
		return nil, fmt.Errorf("%w: the plan gives node %s no role (reset or rejoin)", ErrInvalid, cfg.NodeName)
	}
	if (p.Role != RoleRejoin || req.Bootstrap != BootstrapNone) && req.Resolve == nil {
		return nil, fmt.Errorf("%w: the plan names no snapshot", ErrInvalid)
	}
	for _, name := range steps {
		p.Steps = append(p.Steps, Step{Name: name, State: Pending})
	}
	return p, nil
}

// Prepared is what Prepare did besides writing the plan.
type Prepared struct {
	Plan *Plan
	// Reused: a verified copy of the snapshot already on the node served.
	Reused bool
}

// Prepare takes this node's part of a restore before anything stops
// anywhere: the request is checked (Build), the node must hold no other
// restore, the part must still be what the confirmed preview showed (when
// the request names one), the snapshot is fetched and verified where the part uses it
// (the etcd flavour builds the member's new data dir now, while it still
// runs), bootstrap files are staged for a new host, and the plan is
// written to the node's state file. Nothing else happens until the plan
// is run.
func Prepare(ctx context.Context, cfg *agentconfig.Config, store objstore.Store, req Request) (*Prepared, error) {
	p, err := Build(cfg, req)
	if err != nil {
		return nil, err
	}
	if err := CheckFree(cfg, p.ID); err != nil {
		return nil, err
	}
	plans := PlansIn(cfg.StateDir)
	out := &Prepared{Plan: p}
	if p.Role == RoleRejoin && req.PreviewDigest != "" {
		if err := checkPreview(cfg, req.SnapshotName, req.SnapshotSHA256, req.PreviewDigest, req.Previewed); err != nil {
			return nil, err
		}
	}
	if p.Role != RoleRejoin {
		// Errors of the caller's own lookup go back as they are.
		snap, err := req.Resolve(ctx)
		if err != nil {
			return nil, err
		}
		if want := req.SnapshotSHA256; want != "" && want != snap.SHA256 {
			return nil, fmt.Errorf("%w: snapshot %s has sha256 %s here, the plan expects %s", ErrNotHere, snap.Name, snap.SHA256, want)
		}
		if sqlite := snap.DatastoreKind() == dbsnap.DatastoreSQLite; sqlite != (p.Role == RoleSQLite) {
			here := "etcd"
			if p.Role == RoleSQLite {
				here = "SQLite (state.db through kine)"
			}
			return nil, fmt.Errorf("%w: %v: snapshot %s is of the %s datastore, node %s keeps its datastore in %s; pick a snapshot taken on a server like it", ErrNotHere, errNotSQLiteSnapshot, snap.Name, snap.DatastoreKind(), cfg.NodeName, here)
		}
		if req.PreviewDigest != "" {
			if err := checkPreview(cfg, snap.Name, snap.SHA256, req.PreviewDigest, req.Previewed); err != nil {
				return nil, err
			}
		}
		if out.Reused, err = Stage(ctx, store, snap, req.Identity, cfg.StateDir, p); err != nil {
			return nil, err
		}
		if req.Bootstrap != BootstrapNone {
			if p.BootstrapDir, err = stageBootstrap(ctx, store, snap, req.Identity, cfg, p.ID, req.Bootstrap == BootstrapAll); err != nil {
				return nil, err
			}
		}
	}
	if p.Role == RoleRejoin && req.Bootstrap != BootstrapNone {
		// A new host rejoins with the snapshot's cluster's token.
		snap, err := req.Resolve(ctx)
		if err != nil {
			return nil, err
		}
		if p.BootstrapDir, err = stageBootstrap(ctx, store, snap, req.Identity, cfg, p.ID, req.Bootstrap == BootstrapAll); err != nil {
			return nil, err
		}
	}
	if err := plans.Save(p); err != nil {
		return nil, fmt.Errorf("write the plan's state file: %w", err)
	}
	return out, nil
}

// CheckFree refuses when this node holds another restore: one that has not
// finished, or one prepared moments ago that may be about to start. A plan
// of the same id that already ran is refused too.
func CheckFree(cfg *agentconfig.Config, id string) error {
	plans := PlansIn(cfg.StateDir)
	if u, err := plans.Unfinished(); err != nil {
		return fmt.Errorf("read restore plans: %w", err)
	} else if u != nil {
		return fmt.Errorf("%w: plan %s (snapshot %s) has not finished on %s; see kubectl dr etcd restore --status (state file %s)", ErrBusy, u.ID, u.Snapshot, cfg.NodeName, plans.path(u.ID))
	}
	if list, err := plans.List(); err == nil {
		for _, other := range list {
			if other.ID != id && !other.Started && time.Since(other.Created) < PreparedHold {
				return fmt.Errorf("%w: plan %s was prepared on %s %s ago and may be about to start; wait %s or start it", ErrBusy, other.ID, cfg.NodeName, time.Since(other.Created).Round(time.Second), PreparedHold)
			}
		}
	}
	if old, err := plans.Load(id); err == nil && old.Started {
		return fmt.Errorf("%w: plan %s already ran on %s", ErrAlreadyRan, old.ID, cfg.NodeName)
	}
	return nil
}

// tokenFile is the server token's path in the data dir (and the store's
// bootstrap record).
const tokenFile = "server/token"

// stageBootstrap fetches the files kept with the snapshot into the state
// dir (0700), for the plan's put-bootstrap-files step.
func stageBootstrap(ctx context.Context, store objstore.Store, snap *dbsnap.Snapshot, id age.Identity, cfg *agentconfig.Config, planID string, all bool) (string, error) {
	if id == nil {
		return "", fmt.Errorf("%w: the bootstrap files kept with snapshot %s are encrypted to it", ErrNoKey, snap.Name)
	}
	files, err := dbsnap.FetchBootstrap(ctx, store, snap, id)
	if err != nil {
		return "", err
	}
	if _, ok := files[tokenFile]; !ok {
		return "", fmt.Errorf("snapshot %s's bootstrap record has no %s", snap.Name, tokenFile)
	}
	dir := filepath.Join(cfg.StateDir, "restore", planID+bootstrapSuffix)
	for rel, data := range files {
		if !all && rel != tokenFile {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := durable.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return "", err
		}
		if err := durable.WriteFile(p, data, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}
