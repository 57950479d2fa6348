package etcdrestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"

	"github.com/kubectl-dr/kubectl-dr/agent/config"
	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
)

// NewRunner is the runner for a node configured as cfg: its host actions,
// its k3s reset, and health checks through its etcd client settings. The
// agent's service and `dr-agent etcd restore` both use it.
func NewRunner(cfg *config.Config, onStep func(*Plan, Step)) *Runner {
	e := cfg.Etcd
	client := etcdsnap.ClientConfig{Endpoint: e.Endpoint, CA: e.CA, Cert: e.Cert, Key: e.Key}
	r := cfg.Restore
	var host Host = Commands{StopCommand: r.StopCommand, StartCommand: r.StartCommand}
	if r.Flavor == config.FlavorK3s && len(r.StopCommand) == 0 && len(r.StartCommand) == 0 {
		host = K3sCommands()
	}
	reset := NewK3sReset(r.K3sBinary, cfg.DataDir)
	return &Runner{
		Plans: PlansIn(cfg.StateDir),
		Host:  host,
		Healthy: func(ctx context.Context) error {
			return etcdsnap.Status(ctx, client).Err
		},
		Reset: reset.Run,
		ResetHealthy: func(ctx context.Context, urls []string) error {
			var errs []error
			for _, u := range urls {
				c := client
				c.Endpoint = u
				st := etcdsnap.Status(ctx, c)
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

// ErrNoKey means the snapshot is encrypted and no key was given.
var ErrNoKey = errors.New("no snapshot key")

// FetchSnapshot puts a verified copy of snap at <stateDir>/restore/<name>.db:
// a copy already there whose size and sha256 match is used as it is;
// otherwise the object is downloaded, decrypted with the key in keyFile,
// decompressed and checked against both checksums, and nothing is left
// when it does not match (etcdsnap.ErrChecksum). reused tells which.
func FetchSnapshot(ctx context.Context, store objstore.Store, snap *etcdsnap.Snapshot, keyFile, stateDir string) (path string, reused bool, err error) {
	path = filepath.Join(stateDir, "restore", snap.Name+".db")
	if err := etcdsnap.VerifyLocal(path, snap); err == nil {
		return path, true, nil
	}
	var id age.Identity
	if snap.Encrypted() {
		if keyFile == "" {
			return "", false, fmt.Errorf("%w: %s is encrypted (give the snapshot key: etcd.snapshotKeyFile, or --key-file)", ErrNoKey, snap.Name)
		}
		x, err := etcdsnap.LoadIdentity(keyFile)
		if err != nil {
			return "", false, err
		}
		id = x
	}
	os.Remove(path)
	if err := etcdsnap.FetchCache(ctx, store, snap, id, path); err != nil {
		return "", false, err
	}
	return path, false, nil
}
