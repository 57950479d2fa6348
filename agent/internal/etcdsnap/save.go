package etcdsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"filippo.io/age"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// Errors a caller can tell apart.
var (
	ErrNotMember = errors.New("this node runs no datastore (no etcd member, no SQLite state.db)")
	ErrBusy      = errors.New("a snapshot is already being taken on this node")
)

// Snapshotter takes, uploads, lists and removes the node's etcd snapshots.
type Snapshotter struct {
	Node   string
	Layout Layout
	Client etcdmember.ClientConfig
	// Store is the cluster's part of the store; nil keeps snapshots local.
	Store     objstore.Store
	ClusterID string
	// Recipient encrypts snapshots before they leave the node; nil leaves
	// them unencrypted (marked so).
	Recipient age.Recipient
	// StateDir keeps metadata of local snapshots not yet uploaded.
	StateDir string
	Now      func() time.Time
	// Signer is the node's enrolled key that signs each record; nil (or
	// returning nil: not enrolled yet) writes records unsigned, which a
	// restore refuses unless told --allow-unsigned.
	Signer func() *signature.Signer

	mu sync.Mutex
}

// SaveRequest names one snapshot to take.
type SaveRequest struct {
	Name      string
	BackupSet string
	Scheduled bool
	// Progress is told the bytes read from etcd so far and the expected
	// total (the db size etcd reported).
	Progress func(phase string, done, total int64)
}

func (s *Snapshotter) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Snapshotter) pendingDir() string { return filepath.Join(s.StateDir, "etcd-pending") }

// Save takes a snapshot of the node's datastore. From the local etcd
// member it goes, in one pass over etcd's
// stream, checks etcd's sha256 trailer, writes the k3s-named local copy
// (.part, fsync, rename) and uploads it compressed. The metadata object is
// written only after the upload is verified. If the upload fails, the
// local copy is kept and recorded as not uploaded, and the returned
// snapshot says why; the error is for failures that leave no snapshot.
// A server on SQLite takes an online copy of state.db instead
// (saveSQLite), kept, uploaded and recorded the same way.
func (s *Snapshotter) Save(ctx context.Context, req SaveRequest) (*dbsnap.Snapshot, error) {
	if err := dbsnap.ValidateName(req.Name); err != nil {
		return nil, err
	}
	kind := s.Layout.Datastore()
	if kind == "" {
		return nil, fmt.Errorf("node %s: %w (no %s and no %s)", s.Node, ErrNotMember, s.Layout.EtcdDataDir(), s.Layout.StateDB())
	}
	if !s.mu.TryLock() {
		return nil, ErrBusy
	}
	defer s.mu.Unlock()
	progress := req.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	if kind == DatastoreSQLite {
		return s.saveSQLite(ctx, req, progress)
	}

	cli, err := s.Client.New(snapshotDial()...)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var total int64
	var first *pb.SnapshotResponse
	if st, err := cli.Status(ctx, s.Client.Endpoint); err == nil {
		// The stream is the database file and etcd's sha256 trailer.
		total = st.DbSize + sha256.Size
	}
	// The stream's messages are read here, not through the client's
	// SnapshotWithVersion (a goroutine and a pipe: one more copy).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	codec := &blobCodec{}
	defer codec.release()
	var stream blobStream
	client, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(sctx, &pb.SnapshotRequest{}, grpc.ForceCodecV2(codec))
	if err == nil {
		stream = blobStream{client, codec}
		// The first blob's buffer stays with the codec (freed on
		// return) until copyStream takes it.
		first, err = stream.Recv()
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot stream from %s: %w", s.Client.Endpoint, err)
	}
	resp := first

	created := s.now().UTC()
	file := dbsnap.FileName(req.Name, s.Node, created)
	snap := &dbsnap.Snapshot{
		Name:        file,
		Node:        s.Node,
		Created:     created,
		ClusterID:   s.ClusterID,
		EtcdVersion: resp.GetVersion(),
		Compression: "zstd",
		BackupSet:   req.BackupSet,
		Scheduled:   req.Scheduled,
	}
	if resp.Header != nil {
		snap.Revision = resp.Header.Revision
		snap.EtcdClusterID = etcdmember.HexID(resp.Header.ClusterId)
	}
	if s.Recipient != nil {
		snap.Encryption = "age"
	}

	dir := s.Layout.SnapshotsDir()
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshots dir: %w", err)
	}
	local := filepath.Join(dir, file)
	// The trailer check hashes these bytes already.
	f, err := durable.Create(local, 0o600, durable.WithHash(nil))
	if err != nil {
		return nil, err
	}
	discard := f.Abort

	var up *uploader
	if s.Store != nil {
		snap.StoreKey = dbsnap.DataKey(s.Node, file, snap.Encrypted())
		if up, err = startUpload(ctx, s.Store, snap.StoreKey, s.Recipient); err != nil {
			discard()
			return nil, err
		}
	}
	trailer := newTrailerCheck()
	progress("snapshot", 0, total)
	n, err := copyStream(first, stream, f, trailer, up, func(done int64) {
		// The size etcd reported before the stream is an estimate (the
		// database may grow meanwhile): past it, the total is unknown
		// rather than a percentage over 100.
		if done > total {
			total = 0
		}
		progress("snapshot", done, total)
	})
	if err == nil {
		err = trailer.Verify()
	}
	if err != nil {
		if up != nil {
			up.Abort(err)
		}
		discard()
		return nil, fmt.Errorf("read snapshot from %s: %w", s.Client.Endpoint, err)
	}
	snap.Size = n
	snap.SHA256 = hex.EncodeToString(trailer.Sum256())
	if err := f.Commit(); err != nil {
		if up != nil {
			up.Abort(err)
		}
		return nil, err
	}
	snap.LocalPath = local
	// etcd's stream header carries no revision; the snapshot itself does.
	if rev, err := snapshotRevision(local); err == nil && rev > 0 {
		snap.Revision = rev
	}

	if up == nil {
		return snap, s.writePending(snap)
	}
	progress("upload", n, n)
	snap.StoredSize, snap.StoredSHA256, err = up.Finish()
	if err == nil {
		err = s.commit(ctx, snap)
	}
	if err != nil {
		snap.UploadError = err.Error()
		if perr := s.writePending(snap); perr != nil {
			return snap, errors.Join(err, perr)
		}
		return snap, nil
	}
	return snap, nil
}

// commit verifies the stored object and writes the metadata object that
// makes the snapshot visible.
func (s *Snapshotter) commit(ctx context.Context, snap *dbsnap.Snapshot) error {
	info, err := s.Store.Stat(ctx, snap.StoreKey)
	if err != nil {
		return fmt.Errorf("verify upload: %w", err)
	}
	if info.Size != snap.StoredSize {
		return fmt.Errorf("verify upload of %s: store holds %d bytes, %d were sent", snap.StoreKey, info.Size, snap.StoredSize)
	}
	// The bootstrap files go up before the metadata that names them.
	if snap.Bootstrap, err = s.keepBootstrap(ctx, snap); err != nil {
		return err
	}
	snap.Uploaded = true
	snap.UploadError = ""
	snap.Version = store.FormatVersion
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	var sign *signature.Signer
	if s.Signer != nil {
		sign = s.Signer()
	}
	if err := signature.Put(ctx, s.Store, sign, dbsnap.MetaKey(snap.Node, snap.Name), data); err != nil {
		snap.Uploaded = false
		return fmt.Errorf("write snapshot metadata: %w", err)
	}
	os.Remove(filepath.Join(s.pendingDir(), snap.Name+".json"))
	return nil
}

func (s *Snapshotter) writePending(snap *dbsnap.Snapshot) error {
	if err := durable.MkdirAll(s.pendingDir(), 0o700); err != nil {
		return fmt.Errorf("record snapshot %s as not uploaded: %w", snap.Name, err)
	}
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(s.pendingDir(), snap.Name+".json"), data, 0o600); err != nil {
		return fmt.Errorf("record snapshot %s as not uploaded: %w", snap.Name, err)
	}
	return nil
}

// blobStream receives the snapshot's messages, each with the buffer its
// blob points into (see blobCodec).
type blobStream struct {
	pb.Maintenance_SnapshotClient
	codec *blobCodec
}

func (s blobStream) next() (*pb.SnapshotResponse, mem.Buffer, error) {
	resp, err := s.Recv()
	return resp, s.codec.take(), err
}

// copyStream writes the snapshot's bytes, the first message's and every
// one after it, to the local file, the trailer check and the uploader.
// Each blob goes to the uploader with its buffer, without a copy; the
// uploader frees the buffer once the blob is compressed.
func copyStream(first *pb.SnapshotResponse, stream blobStream, f io.Writer, trailer *trailerCheck, up *uploader, progress func(int64)) (int64, error) {
	held := stream.codec.take()
	var n int64
	var last time.Time
	for resp := first; ; {
		if blob := resp.GetBlob(); len(blob) > 0 {
			if _, err := f.Write(blob); err != nil {
				if held != nil {
					held.Free()
				}
				return n, err
			}
			trailer.Write(blob)
			n += int64(len(blob))
			if now := time.Now(); now.Sub(last) > 200*time.Millisecond {
				last = now
				progress(n)
			}
		}
		if up != nil {
			up.send(resp.GetBlob(), held)
		} else if held != nil {
			held.Free()
		}
		var err error
		if resp, held, err = stream.next(); err == io.EOF {
			break
		} else if err != nil {
			return n, err
		}
	}
	progress(n)
	return n, nil
}
