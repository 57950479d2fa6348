package restoreplan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// Steps of the k3s flavour, in k3s's documented order. The reset server:
// verify, stop, wait until the other servers' etcd is down, run
// `k3s server --cluster-reset --cluster-reset-restore-path=FILE` (k3s moves
// server/db/etcd to etcd-old-<time> itself and restores a one-member
// cluster), start, wait healthy. Every other server: stop, wait until the
// reset server's etcd is healthy, move server/db/etcd aside, start (k3s
// joins it as a new member), wait healthy.
const (
	StepWaitPeersStopped = "wait-peers-stopped"
	StepClusterReset     = "cluster-reset"
	StepWaitResetServer  = "wait-reset-server"
	StepMoveAside        = "move-db-aside"
	// StepBootstrap puts the server token (and encryption config) from
	// the store in place, for a restore onto a new host.
	StepBootstrap = "put-bootstrap-files"
)

// Roles of the k3s flavour.
const (
	RoleReset  = "reset"
	RoleRejoin = "rejoin"
)

// PeersLimit bounds the waits on other servers unless the plan says
// otherwise (Plan.PeersWait).
const PeersLimit = 10 * time.Minute

func (p *Plan) peersWait() time.Duration {
	if p.PeersWait > 0 {
		return p.PeersWait
	}
	return PeersLimit
}

// K3sReset runs k3s's cluster reset from a snapshot file.
type K3sReset struct {
	// Prefix goes before the binary (nsenter into the host's namespaces
	// when the agent runs in a container).
	Prefix  []string
	Binary  string
	DataDir string
	// Timeout bounds the reset (default 15 minutes).
	Timeout time.Duration
}

// NewK3sReset is the reset for a k3s binary and data dir, entered through
// the host's namespaces when the agent runs in a container.
func NewK3sReset(binary, dataDir string) K3sReset {
	r := K3sReset{Binary: binary, DataDir: dataDir}
	if InContainer() {
		r.Prefix = nsenterHost()
	}
	return r
}

// Argv is the command the reset runs.
func (k K3sReset) Argv(snapshotPath string) []string {
	argv := append(append([]string{}, k.Prefix...), k.Binary, "server", "--cluster-reset", "--cluster-reset-restore-path="+snapshotPath)
	if k.DataDir != "" {
		argv = append(argv, "--data-dir="+k.DataDir)
	}
	return argv
}

// Run resets the cluster from snapshotPath. k3s renames server/db/etcd to
// etcd-old-<unix time> before it restores and fails when there is none (a
// new host): an empty one is made for it then.
func (k K3sReset) Run(ctx context.Context, snapshotPath string) error {
	etcdDir := filepath.Join(k.DataDir, "server", "db", "etcd")
	if err := durable.MkdirAll(etcdDir, 0o700); err != nil {
		return err
	}
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	return Commands{Timeout: timeout}.run(ctx, "cluster reset", k.Argv(snapshotPath))
}

// oldDirs lists the etcd-old-* dirs k3s leaves beside server/db/etcd.
func oldDirs(etcdDir string) []string {
	m, _ := filepath.Glob(filepath.Clean(etcdDir) + "-old-*")
	return m
}

// clusterReset runs the reset and records where k3s put the data dir it
// replaced. Run again after an interruption it is safe: k3s moves whatever
// is in server/db/etcd aside first, and the first etcd-old dir of the
// step (the data from before the restore) is the one recorded.
func (r *Runner) clusterReset(ctx context.Context, p *Plan, s *Step) error {
	before := oldDirs(p.Member.DataDir)
	err := r.Reset(ctx, p.SnapshotPath)
	if s.Detail == "" {
		for _, d := range oldDirs(p.Member.DataDir) {
			if !slices.Contains(before, d) {
				p.update(func() { s.Detail = d })
			}
		}
	}
	return err
}

// waitPeersStopped waits until nothing answers at any of the peer URLs:
// the other servers' etcd is down, as k3s's reset requires.
func waitPeersStopped(ctx context.Context, peerURLs []string, limit time.Duration) error {
	return poll(ctx, limit, "the other servers' etcd did not stop (stop k3s there)", func(ctx context.Context) error {
		var up []string
		for _, u := range peerURLs {
			if hostPortAnswers(ctx, u) {
				up = append(up, u)
			}
		}
		if len(up) > 0 {
			return fmt.Errorf("etcd still answers at %s", strings.Join(up, ", "))
		}
		return nil
	})
}

func hostPortAnswers(ctx context.Context, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// moveAside renames the member's data dir to aside, so k3s joins the reset
// server as a new member. Run again, it sees the move done.
func moveAside(dataDir, aside string) error {
	dataDir = filepath.Clean(dataDir)
	switch {
	case exists(aside) && !exists(dataDir):
		return nil
	case !exists(dataDir):
		return nil
	case exists(aside):
		return fmt.Errorf("both %s and %s exist: k3s started here before the move finished; stop it and move %s aside by hand", dataDir, aside, dataDir)
	}
	if err := durable.Rename(dataDir, aside); err != nil {
		return fmt.Errorf("move %s aside: %w", dataDir, err)
	}
	return nil
}

// putBootstrapFiles copies every file under dir (paths relative to the k3s
// data dir, as the store keeps them) into dataDir. A different file already
// there is renamed to <file>.aside-<plan> first; the same one is left. It
// returns what it moved aside. Every file is checked before any is
// written: only the bootstrap files k3s keeps (dbsnap.BootstrapFiles), as
// regular files, and no symbolic link on the way into dataDir is followed.
func putBootstrapFiles(dir, dataDir, planID string) ([]string, error) {
	var rels []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if err := dbsnap.CheckBootstrapPath(filepath.ToSlash(rel)); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: staged %s is not a regular file", dbsnap.ErrBootstrapPath, path)
		}
		if err := checkNoLinks(dataDir, rel); err != nil {
			return err
		}
		rels = append(rels, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put the bootstrap files: %w; nothing was written", err)
	}
	var moved []string
	for _, rel := range rels {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return moved, err
		}
		target := filepath.Join(dataDir, rel)
		if cur, err := os.ReadFile(target); err == nil {
			if string(cur) == string(data) {
				continue
			}
			aside := target + ".aside-" + planID
			if err := durable.MoveAside(target, aside); err != nil {
				return moved, fmt.Errorf("move %s aside: %w", target, err)
			}
			moved = append(moved, aside)
		}
		if err := durable.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return moved, err
		}
		if err := durable.WriteFile(target, data, 0o600); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// checkNoLinks refuses when a directory between dataDir and rel, or rel
// itself, is a symbolic link (or rel is not a regular file): writing
// through it would put a file wherever the link points. What does not
// exist yet is made by the write.
func checkNoLinks(dataDir, rel string) error {
	cur := dataDir
	parts := strings.Split(rel, string(filepath.Separator))
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		last := i == len(parts)-1
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link: a bootstrap file is never written through one", dbsnap.ErrBootstrapPath, cur)
		case !last && !st.IsDir():
			return fmt.Errorf("%w: %s is not a directory", dbsnap.ErrBootstrapPath, cur)
		case last && !st.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file", dbsnap.ErrBootstrapPath, cur)
		}
	}
	return nil
}
