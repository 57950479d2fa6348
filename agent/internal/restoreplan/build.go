package restoreplan

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/etcdserver/cindex"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// A restore builds the member's new data directory beside the current one
// while the member still runs (StagingDir), and records what it built in a
// file beside it (Built); with the member stopped, the restore step only
// swaps the directories. The snapshot streams from the store straight into
// the new directory's database: no second copy, and the disk writes
// overlap the download.

// StagingDir is where the new data directory of dataDir is built.
func StagingDir(dataDir string) string { return filepath.Clean(dataDir) + ".restoring" }

// Built describes a finished staging directory (<staging>.json).
type Built struct {
	Plan           string    `json:"plan"`
	Snapshot       string    `json:"snapshot"`
	SnapshotSHA256 string    `json:"snapshotSHA256"`
	Member         string    `json:"member"`
	Revision       int64     `json:"revision"`
	DBSize         int64     `json:"dbSize"`
	Time           time.Time `json:"time"`
}

func builtPath(staging string) string { return staging + ".json" }

// ReadBuilt reads what was built at staging.
func ReadBuilt(staging string) (*Built, error) {
	data, err := os.ReadFile(builtPath(staging))
	if err != nil {
		return nil, err
	}
	var b Built
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", builtPath(staging), err)
	}
	return &b, nil
}

// BuildFromStore streams snap from the store (downloaded, decrypted,
// decompressed, both checksums checked) into a new data directory for m
// at staging, for plan. A staging directory left by anything else is
// removed first: it is only ever ours.
func BuildFromStore(ctx context.Context, store objstore.Store, s *dbsnap.Snapshot, identity age.Identity, m Member, staging, plan string) (*Built, error) {
	return build(staging, m, s, plan, func(w io.Writer) error {
		return dbsnap.Stream(ctx, store, s, identity, w)
	})
}

// BuildFromFile is BuildFromStore from a snapshot file already on the
// node (the preview's verified copy): it is checked against s as it is
// copied.
func BuildFromFile(path string, s *dbsnap.Snapshot, m Member, staging, plan string) (*Built, error) {
	return build(staging, m, s, plan, func(w io.Writer) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), f)
		if err != nil {
			return fmt.Errorf("copy %s: %w", path, err)
		}
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != s.SHA256 || n != s.Size {
			return fmt.Errorf("%w: %s is %d bytes with sha256 %s, snapshot %s is %d bytes, %s", dbsnap.ErrChecksum, path, n, got, s.Name, s.Size, s.SHA256)
		}
		return nil
	})
}

func build(staging string, m Member, s *dbsnap.Snapshot, plan string, fill func(io.Writer) error) (*Built, error) {
	if m.Name == "" || len(m.PeerURLs) == 0 || m.InitialCluster == "" {
		return nil, errors.New("restore: member name, peer URLs and initial cluster are required")
	}
	os.Remove(builtPath(staging))
	if err := os.RemoveAll(staging); err != nil {
		return nil, fmt.Errorf("restore: remove the unfinished %s: %w", staging, err)
	}
	fail := func(err error) (*Built, error) {
		os.RemoveAll(staging)
		return nil, err
	}
	snapDir := filepath.Join(staging, "member", "snap")
	if err := durable.MkdirAll(snapDir, 0o700); err != nil {
		return fail(err)
	}
	dbPath := filepath.Join(snapDir, "db")
	f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	w := &writeback{f: f}
	if err := fill(w); err != nil {
		f.Close()
		return fail(fmt.Errorf("restore %s: %w", s.Name, err))
	}
	// etcd's snapshot ends in the sha256 of the database (the checksum
	// just checked covers it); the database itself is what comes before.
	if w.off%512 == sha256.Size {
		if err := f.Truncate(w.off - sha256.Size); err != nil {
			f.Close()
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	rev, err := makeMember(staging, dbPath, m)
	if err != nil {
		return fail(fmt.Errorf("restore %s for member %s: %w", s.Name, m.Name, err))
	}
	st, err := os.Stat(dbPath)
	if err != nil {
		return fail(err)
	}
	for _, d := range []string{snapDir, filepath.Join(staging, "member"), staging, filepath.Dir(staging)} {
		if err := durable.SyncDir(d); err != nil {
			return fail(err)
		}
	}
	b := &Built{Plan: plan, Snapshot: s.Name, SnapshotSHA256: s.SHA256, Member: m.Name, Revision: rev, DBSize: st.Size(), Time: time.Now().UTC()}
	data, _ := json.MarshalIndent(b, "", "  ")
	if err := durable.WriteFile(builtPath(staging), data, 0o600); err != nil {
		return fail(err)
	}
	return b, nil
}

// makeMember turns the database at dbPath into member m of a new cluster
// (etcd's membership replaced by the initial cluster, the revision bumped
// and marked compacted when asked, the consistent index set) and writes
// the member's WAL and raft snapshot; it returns the database's revision.
func makeMember(dataDir, dbPath string, m Member) (int64, error) {
	lg := zap.NewNop()
	peers, err := types.NewURLsMap(m.InitialCluster)
	if err != nil {
		return 0, fmt.Errorf("initial cluster %q: %w", m.InitialCluster, err)
	}
	cl, err := membership.NewClusterFromURLsMap(lg, m.InitialClusterToken, peers)
	if err != nil {
		return 0, err
	}
	self := cl.MemberByName(m.Name)
	if self == nil {
		return 0, fmt.Errorf("member %s is not in the initial cluster %s", m.Name, m.InitialCluster)
	}

	// The newest revision, read before the database is opened for
	// writing (the key bucket's last key; etcdutl reads every key).
	latest, err := etcdsnap.Revision(dbPath)
	if err != nil {
		return 0, err
	}
	be := backend.NewDefaultBackend(lg, dbPath)
	closed := false
	defer func() {
		if !closed {
			be.Close()
		}
	}()
	mb := schema.NewMembershipBackend(lg, be)
	if err := mb.TrimMembershipFromBackend(); err != nil {
		return 0, fmt.Errorf("remove the old membership: %w", err)
	}
	base := latest
	if m.RevisionBump > 0 && m.RevisionFloor > base {
		base = m.RevisionFloor
	}
	rev := bumpRevision(be, base, int64(m.RevisionBump))
	cl.SetBackend(mb)
	for _, mem := range cl.Members() {
		cl.AddMember(mem, membership.ApplyBoth)
	}

	// The raft log of a new cluster: one entry adding each member.
	md, err := (&etcdserverpb.Metadata{NodeID: uint64(self.ID), ClusterID: uint64(cl.ID())}).Marshal()
	if err != nil {
		return 0, err
	}
	w, err := wal.Create(lg, filepath.Join(dataDir, "member", "wal"), md)
	if err != nil {
		return 0, fmt.Errorf("create the WAL: %w", err)
	}
	defer w.Close()
	var ents []raftpb.Entry
	var voters []uint64
	for i, id := range cl.MemberIDs() {
		ctx, err := json.Marshal(cl.Member(id))
		if err != nil {
			return 0, err
		}
		cc, err := (&raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: uint64(id), Context: ctx}).Marshal()
		if err != nil {
			return 0, err
		}
		ents = append(ents, raftpb.Entry{Type: raftpb.EntryConfChange, Term: 1, Index: uint64(i + 1), Data: cc})
		voters = append(voters, uint64(id))
	}
	commit, term := uint64(len(ents)), uint64(1)
	if err := w.Save(raftpb.HardState{Term: term, Vote: voters[0], Commit: commit}, ents); err != nil {
		return 0, fmt.Errorf("write the WAL: %w", err)
	}
	conf := raftpb.ConfState{Voters: voters}
	if err := snap.New(lg, filepath.Join(dataDir, "member", "snap")).SaveSnap(raftpb.Snapshot{
		Data:     etcdserver.GetMembershipInfoInV2Format(lg, cl),
		Metadata: raftpb.SnapshotMetadata{Index: commit, Term: term, ConfState: conf},
	}); err != nil {
		return 0, fmt.Errorf("write the raft snapshot: %w", err)
	}
	if err := w.SaveSnapshot(walpb.Snapshot{Index: commit, Term: term, ConfState: &conf}); err != nil {
		return 0, fmt.Errorf("write the WAL snapshot: %w", err)
	}
	cindex.UpdateConsistentIndexForce(be.BatchTx(), commit, term)
	be.ForceCommit()
	closed = true
	if err := be.Close(); err != nil {
		return 0, err
	}
	// The commit synced the database; make sure of all of it.
	f, err := os.OpenFile(dbPath, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return rev, f.Sync()
}

// bumpRevision moves the database's revision amount past latest and marks
// the revisions up to there compacted (nothing when amount is 0); it
// returns the revision the member starts at.
func bumpRevision(be backend.Backend, latest, amount int64) int64 {
	if amount == 0 {
		return latest
	}
	tx := be.BatchTx()
	tx.LockOutsideApply()
	defer tx.Unlock()
	latest += amount
	tx.UnsafePut(schema.Key, mvcc.RevToBytes(mvcc.Revision{Main: latest}, mvcc.NewRevBytes()), []byte{})
	mvcc.UnsafeSetScheduledCompact(tx, latest)
	return latest
}

// writeback writes the database and has the kernel start writing every
// 32 MiB behind it, so that the sync at the end finds little left to do.
type writeback struct {
	f       *os.File
	off     int64
	flushed int64
}

const writebackChunk = 32 << 20

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= writebackChunk {
		// Best effort: a file system without it syncs at the end anyway.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.off-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.off
	}
	return n, err
}
