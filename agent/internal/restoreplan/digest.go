package restoreplan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// ErrPreviewChanged: this node's part of a restore is not what the preview
// the user confirmed showed; nothing was fetched, built or written.
var ErrPreviewChanged = errors.New("changed since the preview")

// Preview is one node's part of an etcd restore as its preview digests
// it: the snapshot, and the data dir the restore moves aside (the etcd
// flavour swaps it for the one built from the snapshot, k3s's cluster
// reset and a rejoining server move it aside). The live keys the preview
// compares with are not part of it: a running cluster changes them every
// few seconds.
type Preview struct {
	Snapshot       string `json:"snapshot"`
	SnapshotSHA256 string `json:"snapshotSHA256"`
	Node           string `json:"node"`
	DataDir        string `json:"dataDir"`
	// Identity of the data dir and of its member directory: etcd writes
	// inside them while it runs, but a data dir moved aside, replaced or
	// created anew has other inodes.
	DataDirID DirID `json:"dataDirId"`
	MemberID  DirID `json:"memberDirId"`
}

// DirID identifies a directory on the node; the zero value is "absent".
type DirID struct {
	Dev   uint64 `json:"dev,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
}

func (d DirID) String() string {
	if d == (DirID{}) {
		return "absent"
	}
	return fmt.Sprintf("inode %d on device %d", d.Inode, d.Dev)
}

func dirID(path string) DirID {
	st, err := os.Lstat(path)
	if err != nil || !st.IsDir() {
		return DirID{}
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return DirID{Dev: uint64(sys.Dev), Inode: sys.Ino}
	}
	return DirID{}
}

// NodePreview is this node's part of a restore from the snapshot named
// with that checksum, as it stands now.
func NodePreview(cfg *agentconfig.Config, snapshot, sha string) *Preview {
	dir := filepath.Clean(cfg.Restore.EtcdDataDir)
	return &Preview{
		Snapshot: snapshot, SnapshotSHA256: sha, Node: cfg.NodeName, DataDir: dir,
		DataDirID: dirID(dir), MemberID: dirID(filepath.Join(dir, "member")),
	}
}

// digestVersion changes whenever what is digested changes.
const digestVersion = "kubectl-dr etcd restore preview 1"

// Digest is the sha256 (hex) of the preview.
func (p *Preview) Digest() string {
	data, err := json.Marshal(struct {
		Version string `json:"version"`
		*Preview
	}{digestVersion, p})
	if err != nil {
		// Strings and numbers only: it cannot fail.
		panic(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// checkPreview refuses unless the node's part now gives the digest the
// user confirmed; then is that preview when the agent still holds it, to
// say what changed.
func checkPreview(cfg *agentconfig.Config, snapshot, sha, confirmed string, then *Preview) error {
	now := NodePreview(cfg, snapshot, sha)
	if now.Digest() == confirmed {
		return nil
	}
	return fmt.Errorf("%w on node %s: %s; nothing was stopped, fetched or written: run the restore again to see the new preview", ErrPreviewChanged, cfg.NodeName, now.changedFrom(then))
}

// changedFrom says, for people, how p differs from then.
func (p *Preview) changedFrom(then *Preview) string {
	if then == nil {
		return fmt.Sprintf("snapshot %s (sha256 %s) and data dir %s (%s) are not what the preview saw (this agent no longer holds that preview to say which: it restarted since)", p.Snapshot, short(p.SnapshotSHA256), p.DataDir, p.DataDirID)
	}
	var diffs []string
	if then.Snapshot != p.Snapshot || then.SnapshotSHA256 != p.SnapshotSHA256 {
		diffs = append(diffs, fmt.Sprintf("the snapshot is %s (sha256 %s), the preview's was %s (sha256 %s)", p.Snapshot, short(p.SnapshotSHA256), then.Snapshot, short(then.SnapshotSHA256)))
	}
	if then.Node != p.Node || then.DataDir != p.DataDir {
		diffs = append(diffs, fmt.Sprintf("the data dir is %s on %s, the preview's was %s on %s", p.DataDir, p.Node, then.DataDir, then.Node))
	}
	switch {
	case then.DataDirID != p.DataDirID:
		diffs = append(diffs, fmt.Sprintf("data dir %s was replaced (%s, the preview saw %s)", p.DataDir, p.DataDirID, then.DataDirID))
	case then.MemberID != p.MemberID:
		diffs = append(diffs, fmt.Sprintf("%s was replaced (%s, the preview saw %s)", filepath.Join(p.DataDir, "member"), p.MemberID, then.MemberID))
	}
	if len(diffs) == 0 {
		return "the part is not what the preview saw"
	}
	return strings.Join(diffs, "; ")
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12] + "…"
	}
	return sha
}
