package restoreplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// NewRunner is the runner for a node configured as cfg: its host actions,
// its k3s reset, and health checks through its etcd client settings. The
// agent's service and `dr-agent etcd restore` both use it.
func NewRunner(cfg *agentconfig.Config, onStep func(*Plan, Step)) *Runner {
	e := cfg.Etcd
	client := etcdmember.ClientConfig{Endpoint: e.Endpoint, CA: e.CA, Cert: e.Cert, Key: e.Key}
	r := cfg.Restore
	var host Host = Commands{StopCommand: r.StopCommand, StartCommand: r.StartCommand}
	if r.Flavor == agentconfig.FlavorK3s && len(r.StopCommand) == 0 && len(r.StartCommand) == 0 {
		host = K3sCommands()
	}
	reset := NewK3sReset(r.K3sBinary, cfg.DataDir)
	return &Runner{
		Plans: PlansIn(cfg.StateDir),
		Host:  host,
		Healthy: func(ctx context.Context) error {
			return etcdmember.Status(ctx, client).Err
		},
		Running: func(ctx context.Context) bool {
			return etcdmember.Status(ctx, client).MemberID != 0
		},
		Reset:       reset.Run,
		KineHealthy: kineHealthy(etcdmember.ClientConfig{Endpoint: e.KineEndpoint, CA: e.CA, Cert: e.Cert, Key: e.Key}),
		ResetHealthy: func(ctx context.Context, urls []string) error {
			var errs []error
			for _, u := range urls {
				c := client
				c.Endpoint = u
				st := etcdmember.Status(ctx, c)
				if st.Err == nil {
					return nil
				}
				errs = append(errs, st.Err)
			}
			if len(errs) == 0 {
				return errors.New("the plan names no client URL of the reset server")
			}
			return errors.Join(errs...)
		},
		OnStep: onStep,
	}
}

// PlansIn is where a node with state dir stateDir keeps its plans.
func PlansIn(stateDir string) Plans {
	return Plans{Dir: filepath.Join(stateDir, "restore", "plans")}
}

// ErrNoKey means what is to be decrypted came without the snapshot key.
// Its text is what the user reads: nodes hold only the public recipient.
var ErrNoKey = errors.New("this restore needs the snapshot key: run it through kubectl dr, or give dr-agent etcd restore --snapshot-key-file")

// FetchSnapshot puts a verified copy of snap at <stateDir>/restore/<name>.db:
// a copy already there whose size and sha256 match is used as it is;
// otherwise the object is downloaded, decrypted with the key in keyFile,
// decompressed and checked against both checksums, and nothing is left
// when it does not match (dbsnap.ErrChecksum). reused tells which.
// id decrypts an encrypted snapshot; without it one fails with ErrNoKey
// (a verified copy already here needs none).
func FetchSnapshot(ctx context.Context, store objstore.Store, snap *dbsnap.Snapshot, id age.Identity, stateDir string) (path string, reused bool, err error) {
	path = cachePath(stateDir, snap)
	if dbsnap.VerifyLocal(path, snap) == nil {
		return path, true, nil
	}
	if err := needKey(snap, id); err != nil {
		return "", false, err
	}
	os.Remove(path)
	if err := dbsnap.FetchCache(ctx, store, snap, id, path); err != nil {
		return "", false, err
	}
	return path, false, nil
}

func cachePath(stateDir string, snap *dbsnap.Snapshot) string {
	return filepath.Join(stateDir, "restore", snap.Name+".db")
}

func needKey(snap *dbsnap.Snapshot, id age.Identity) error {
	if snap.Encrypted() && id == nil {
		return fmt.Errorf("%w (snapshot %s is encrypted)", ErrNoKey, snap.Name)
	}
	return nil
}

// Stage puts on the node what plan p needs from snap before anything
// stops. The etcd flavour: the member's new data dir, built beside its
// data dir (p.Staging) from the preview's copy of the snapshot when one is
// here, otherwise streamed from the store without a second copy. The k3s
// flavour: the verified snapshot file k3s resets from (p.SnapshotPath),
// and for a server on SQLite its copy beside state.db (p.Staging).
// reused tells that a copy already on the node was used. A snapshot that
// does not match its checksums fails with dbsnap.ErrChecksum.
func Stage(ctx context.Context, store objstore.Store, snap *dbsnap.Snapshot, id age.Identity, stateDir string, p *Plan) (reused bool, err error) {
	p.Snapshot, p.SnapshotSHA256, p.SnapshotSize = snap.Name, snap.SHA256, snap.Size
	if p.Flavor != agentconfig.FlavorEtcd {
		path, reused, err := FetchSnapshot(ctx, store, snap, id, stateDir)
		if err != nil {
			return false, err
		}
		p.SnapshotPath = path
		if p.Role == RoleSQLite {
			return reused, stageSQLite(ctx, p, path)
		}
		return reused, nil
	}
	staging := StagingDir(p.Member.DataDir)
	if cache := cachePath(stateDir, snap); exists(cache) {
		_, err := BuildFromFile(cache, snap, p.Member, staging, p.ID)
		if err == nil {
			p.SnapshotPath, p.Staging = cache, staging
			return true, nil
		}
		if !errors.Is(err, dbsnap.ErrChecksum) {
			return false, err
		}
		// A copy that does not match is not kept; the store's is used.
		os.Remove(cache)
	}
	if err := needKey(snap, id); err != nil {
		return false, err
	}
	if _, err := BuildFromStore(ctx, store, snap, id, p.Member, staging, p.ID); err != nil {
		return false, err
	}
	p.Staging = staging
	return false, nil
}
