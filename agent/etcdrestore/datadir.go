// Package etcdrestore restores etcd members from snapshot files: a new
// data directory written beside the member's, swapped in with the old one
// moved aside.
package etcdrestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
}

// RestoreDataDir restores a verified snapshot file for m, with the member
// stopped: etcdutl writes a new data directory beside m.DataDir (checking
// the snapshot's sha256 trailer), then the current data directory is
// renamed aside and the new one into its place. Nothing is deleted; aside
// is where the previous data directory now is ("" when there was none).
func RestoreDataDir(snapshotPath string, m Member, log *zap.Logger) (aside string, err error) {
	if m.Name == "" || m.DataDir == "" || len(m.PeerURLs) == 0 || m.InitialCluster == "" {
		return "", errors.New("restore: member name, data dir, peer URLs and initial cluster are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	dataDir := filepath.Clean(m.DataDir)
	staging := dataDir + ".restoring"
	// A staging directory is only ever ours: left by an interrupted
	// restore, it is rebuilt.
	if err := os.RemoveAll(staging); err != nil {
		return "", fmt.Errorf("restore: remove the unfinished %s: %w", staging, err)
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
	}
	if err := snapshot.NewV3(log).Restore(cfg); err != nil {
		os.RemoveAll(staging)
		return "", fmt.Errorf("restore %s into %s: %w", snapshotPath, staging, err)
	}
	if _, err := etcdsnap.Revision(filepath.Join(staging, "member", "snap", "db")); err != nil {
		return "", fmt.Errorf("restore: the restored data dir does not open: %w", err)
	}
	if _, err := os.Stat(dataDir); err == nil {
		aside = fmt.Sprintf("%s.aside-%s", dataDir, time.Now().UTC().Format("20060102-150405"))
		if err := os.Rename(dataDir, aside); err != nil {
			return "", fmt.Errorf("restore: move %s aside: %w", dataDir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(staging, dataDir); err != nil {
		if aside != "" {
			if rerr := os.Rename(aside, dataDir); rerr != nil {
				return aside, fmt.Errorf("restore: put %s in place: %w; and moving the previous data dir back failed too (%v): it is at %s", dataDir, err, rerr, aside)
			}
		}
		return "", fmt.Errorf("restore: put %s in place: %w (the previous data dir is back)", dataDir, err)
	}
	return aside, syncDir(filepath.Dir(dataDir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
