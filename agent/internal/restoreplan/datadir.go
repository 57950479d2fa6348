package restoreplan

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
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
	// RevisionBump moves the revision past the snapshot's (0: keep it),
	// or past RevisionFloor when that is higher: the live revision before
	// the restore, so that a second restore of an older snapshot does not
	// go back below what clients saw.
	RevisionBump  uint64
	RevisionFloor int64
}

// SwapDataDir puts the data dir built at staging in place of dataDir, with
// the member stopped: the current one is renamed to aside (a plan records
// that path first), staging into its place. Nothing is deleted. Run again
// after an interruption, it finishes a swap that was under way.
func SwapDataDir(staging, dataDir, aside string) error {
	dataDir = filepath.Clean(dataDir)
	if exists(aside) {
		// The old data dir went aside: put staging in place if that had
		// not happened yet.
		switch {
		case exists(staging) && !exists(dataDir):
			if err := durable.Rename(staging, dataDir); err != nil {
				return fmt.Errorf("restore: put %s in place: %w", dataDir, err)
			}
			os.Remove(builtPath(staging))
			return durable.SyncDir(filepath.Dir(dataDir))
		case exists(dataDir):
			return nil
		}
		return fmt.Errorf("restore: the previous data dir is at %s but neither %s nor %s exists: move %s back to roll back", aside, dataDir, staging, aside)
	}
	if !exists(staging) {
		return fmt.Errorf("restore: no new data dir at %s (it is built before the member stops): nothing was changed", staging)
	}
	if exists(dataDir) {
		if err := durable.Rename(dataDir, aside); err != nil {
			return fmt.Errorf("restore: move %s aside: %w", dataDir, err)
		}
	}
	if err := durable.Rename(staging, dataDir); err != nil {
		if exists(aside) {
			if rerr := durable.Rename(aside, dataDir); rerr != nil {
				return fmt.Errorf("restore: put %s in place: %w; and moving the previous data dir back failed too (%v): it is at %s", dataDir, err, rerr, aside)
			}
		}
		return fmt.Errorf("restore: put %s in place: %w (the previous data dir is back)", dataDir, err)
	}
	os.Remove(builtPath(staging))
	return durable.SyncDir(filepath.Dir(dataDir))
}

// verifyStaging checks, right before the member stops, that the new data
// dir built when the plan was prepared is still there, whole, and this
// plan's.
func verifyStaging(p *Plan) error {
	b, err := ReadBuilt(p.Staging)
	if err != nil {
		return fmt.Errorf("the new data dir built for this plan is gone (%v): prepare the restore again; nothing was stopped", err)
	}
	if b.Plan != p.ID || b.SnapshotSHA256 != p.SnapshotSHA256 {
		return fmt.Errorf("%s was built for plan %s from %s, not this plan's %s: prepare the restore again; nothing was stopped", p.Staging, b.Plan, b.Snapshot, p.Snapshot)
	}
	db := filepath.Join(p.Staging, "member", "snap", "db")
	st, err := os.Stat(db)
	if err != nil || st.Size() != b.DBSize {
		return fmt.Errorf("%w: %s is not the %d bytes built for this plan (%v): prepare the restore again; nothing was stopped", dbsnap.ErrChecksum, db, b.DBSize, err)
	}
	if _, err := os.Stat(filepath.Join(p.Staging, "member", "wal")); err != nil {
		return fmt.Errorf("the new data dir %s has no WAL (%v): prepare the restore again; nothing was stopped", p.Staging, err)
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// verifyFile checks the snapshot file again right before it is used.
func verifyFile(path, sha string, size int64) error {
	return dbsnap.VerifyLocal(path, &dbsnap.Snapshot{Name: filepath.Base(path), SHA256: sha, Size: size})
}
