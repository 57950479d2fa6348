// Package etcdrestore restores etcd members from snapshot files: a new
// data directory written beside the member's, swapped in with the old one
// moved aside.
package etcdrestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/kubectl-dr/kubectl-dr/agent/etcdsnap"
)

// KubernetesRevisionBump is how far a restore moves etcd's revision past the
// snapshot's, marking the old ones compacted: kube-apiserver's watch caches
// and clients' informers then relist instead of missing what happened
// between the snapshot and the restore (etcd's guidance for Kubernetes).
const KubernetesRevisionBump = 1_000_000_000

// Member is the etcd member a snapshot is restored for.
type Member struct {
	Name     string
	DataDir  string
	PeerURLs []string
	// InitialCluster is name=peerURL,... of every member of the restored
	// cluster; InitialClusterToken names the new cluster.
	InitialCluster      string
	InitialClusterToken string
	// RevisionBump moves the revision past the snapshot's (0: keep it).
	RevisionBump uint64
	// Verified says the snapshot file's sha256 (which covers etcd's own
	// hash trailer) was checked right before: etcdutl need not hash it
	// again.
	Verified bool
}

// RestoreDataDir restores a verified snapshot file for m, with the member
// stopped: etcdutl writes a new data directory beside m.DataDir (checking
// the snapshot's sha256 trailer), then the current data directory is
// renamed to aside (a plan records that path first) and the new one into
// its place. Nothing is deleted. Run again after an interruption, it
// finishes a swap that was under way instead of restoring twice.
func RestoreDataDir(snapshotPath string, m Member, aside string, log *zap.Logger) error {
	if m.Name == "" || m.DataDir == "" || len(m.PeerURLs) == 0 || m.InitialCluster == "" {
		return errors.New("restore: member name, data dir, peer URLs and initial cluster are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	dataDir := filepath.Clean(m.DataDir)
	staging := dataDir + ".restoring"
	if exists(aside) {
		// The old data dir went aside: the restore into staging had
		// finished. Put staging in place if that had not happened yet.
		switch {
		case exists(staging) && !exists(dataDir):
			if err := os.Rename(staging, dataDir); err != nil {
				return fmt.Errorf("restore: put %s in place: %w", dataDir, err)
			}
			return syncDir(filepath.Dir(dataDir))
		case exists(dataDir):
			return nil
		}
		return fmt.Errorf("restore: the previous data dir is at %s but neither %s nor %s exists: move %s back to roll back", aside, dataDir, staging, aside)
	}
	// A staging directory is only ever ours: left by an interrupted
	// restore, it is rebuilt.
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("restore: remove the unfinished %s: %w", staging, err)
	}
	cfg := snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                m.Name,
		OutputDataDir:       staging,
		PeerURLs:            m.PeerURLs,
		InitialCluster:      m.InitialCluster,
		InitialClusterToken: m.InitialClusterToken,
		RevisionBump:        m.RevisionBump,
		MarkCompacted:       m.RevisionBump > 0,
		SkipHashCheck:       m.Verified,
	}
	if err := snapshot.NewV3(log).Restore(cfg); err != nil {
		os.RemoveAll(staging)
		return fmt.Errorf("restore %s into %s: %w", snapshotPath, staging, err)
	}
	if _, err := etcdsnap.Revision(filepath.Join(staging, "member", "snap", "db")); err != nil {
		return fmt.Errorf("restore: the restored data dir does not open: %w", err)
	}
	if exists(dataDir) {
		if err := os.Rename(dataDir, aside); err != nil {
			return fmt.Errorf("restore: move %s aside: %w", dataDir, err)
		}
	}
	if err := os.Rename(staging, dataDir); err != nil {
		if exists(aside) {
			if rerr := os.Rename(aside, dataDir); rerr != nil {
				return fmt.Errorf("restore: put %s in place: %w; and moving the previous data dir back failed too (%v): it is at %s", dataDir, err, rerr, aside)
			}
		}
		return fmt.Errorf("restore: put %s in place: %w (the previous data dir is back)", dataDir, err)
	}
	return syncDir(filepath.Dir(dataDir))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// verifyFile checks the snapshot file again right before it is used.
func verifyFile(path, sha string, size int64) error {
	return etcdsnap.VerifyLocal(path, &etcdsnap.Snapshot{Name: filepath.Base(path), SHA256: sha, Size: size})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
