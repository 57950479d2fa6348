package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// writeTrees gives every node a tree of small files and two large ones,
// from the seed.
func (h *harness) writeTrees(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, n := range h.nodes {
		root := h.treeRoot(n)
		os.RemoveAll(root)
		h.roots[n] = root
		for i := range 150 {
			h.writeFile(filepath.Join(root, fmt.Sprintf("d%02d", i%13), fmt.Sprintf("f%04d.txt", i)), randomBytes(rng, 64+rng.IntN(4096)))
		}
		for i := range 2 {
			h.writeFile(filepath.Join(root, fmt.Sprintf("large-%d.bin", i)), randomBytes(rng, 2<<20))
		}
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func (h *harness) writeFile(p string, body []byte) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, body, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// hashAll maps every file of every node's tree to its sha256.
func (h *harness) hashAll() map[string]string {
	out := map[string]string{}
	for _, n := range h.nodes {
		for p, sum := range h.hashTree(h.roots[n]) {
			out[p] = sum
		}
	}
	return out
}

func (h *harness) hashTree(dir string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		sum, err := fileSHA256(p)
		out[p] = sum
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readSHA256(f)
}

func readSHA256(r io.Reader) (string, error) {
	hs := sha256.New()
	if _, err := io.Copy(hs, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(hs.Sum(nil)), nil
}

// checkAll checks what is listed as good, after a step has recovered:
// etcd snapshots, backup sets, base backups and the WAL archive. Only
// what is new since the last check is read, unless all.
func (h *harness) checkAll(s step, all bool) {
	h.checkSnapshots(s, all)
	h.checkSets(s)
	h.checkWAL(s, all)
	h.checkBaseBackups(s, all)
}

// checkSnapshots: every snapshot `etcd snapshot ls` lists verifies: the
// object in the store against the stored sha256 the record names, then
// downloaded, decrypted and checked by kubectl dr; a local copy against
// its sha256.
func (h *harness) checkSnapshots(s step, all bool) {
	r := h.run("etcd", "snapshot", "ls", "-o", "json")
	h.rep.checked("listings answer", 1)
	var list printers.EtcdSnapshotList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		h.violate(s, "listings answer", r.String())
		return
	}
	for _, snap := range list.Items {
		if !all && h.verifiedSnaps[snap.Name] == snap.StoredSHA256+snap.SHA256+snap.Location {
			continue
		}
		var err error
		if snap.Location == "store" {
			err = h.verifyStored(snap)
		} else {
			err = verifyLocal(snap)
		}
		h.rep.checked("listed etcd snapshots verify", 1)
		if err != nil {
			h.violate(s, "listed etcd snapshots verify", fmt.Sprintf("%s (%s): %v", snap.Name, snap.Location, err))
			continue
		}
		h.verifiedSnaps[snap.Name] = snap.StoredSHA256 + snap.SHA256 + snap.Location
	}
}

func (h *harness) verifyStored(snap *printers.EtcdSnapshot) error {
	rc, err := h.store.Get(context.Background(), snap.StoreKey)
	if err != nil {
		return fmt.Errorf("get %s: %w", snap.StoreKey, err)
	}
	sum, err := readSHA256(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", snap.StoreKey, err)
	}
	if sum != snap.StoredSHA256 {
		return fmt.Errorf("%s has sha256 %s, its record names %s", snap.StoreKey, sum, snap.StoredSHA256)
	}
	dest := filepath.Join(h.t.TempDir(), snap.Name+".db")
	defer os.Remove(dest)
	if r := h.run("etcd", "snapshot", "download", snap.Name, "--to", dest); r.code != 0 {
		return fmt.Errorf("download: %s", r)
	}
	if sum, err := fileSHA256(dest); err != nil || sum != snap.SHA256 {
		return fmt.Errorf("downloaded snapshot has sha256 %s (%v), its record names %s", sum, err, snap.SHA256)
	}
	return nil
}

func verifyLocal(snap *printers.EtcdSnapshot) error {
	sum, err := fileSHA256(snap.LocalPath)
	if err != nil {
		return err
	}
	if sum != snap.SHA256 {
		return fmt.Errorf("%s has sha256 %s, its record names %s", snap.LocalPath, sum, snap.SHA256)
	}
	return nil
}

// checkSets: every set `backup ls` lists as Completed or PartiallyFailed
// verifies. The newest new one goes through `backup verify` (restic check
// of the whole repository, its snapshots in it, its etcd snapshot read
// back); the others' restic snapshots are looked up with restic itself
// (their etcd snapshots are listed and checked by checkSnapshots).
func (h *harness) checkSets(s step) {
	r := h.run("backup", "ls", "-o", "json")
	h.rep.checked("listings answer", 1)
	var list printers.BackupSetList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		h.violate(s, "listings answer", r.String())
		return
	}
	var fresh []*printers.BackupSet
	for _, set := range list.Items {
		if !h.verifiedSets[set.ID] && (set.Phase == backupset.Completed || set.Phase == backupset.PartiallyFailed) {
			fresh = append(fresh, set)
		}
	}
	if len(fresh) == 0 {
		return
	}
	newest := fresh[0]
	for _, set := range fresh {
		if set.Started.After(newest.Started) {
			newest = set
		}
	}
	snaps, err := h.resticSnapshots()
	for _, set := range fresh {
		h.rep.checked("listed backup sets verify", 1)
		if set == newest {
			if v := h.run("backup", "verify", set.ID); v.code != 0 {
				// What restic itself says, for the report: verify's
				// problem lines may not carry restic's messages.
				out, err := h.restic("check", "--json")
				h.violate(s, "listed backup sets verify", fmt.Sprintf("%s (%s): %s\nrestic check --json, run by the test right after (err %v):\n%s", set.ID, set.Phase, v, err, out))
				continue
			}
		} else {
			if err != nil {
				h.violate(s, "listed backup sets verify", err.Error())
				continue
			}
			var missing []string
			for _, p := range set.Files {
				if !p.Failed() && !snaps[p.SnapshotID] {
					missing = append(missing, p.Node+": "+p.SnapshotID)
				}
			}
			if len(missing) > 0 {
				h.violate(s, "listed backup sets verify", fmt.Sprintf("%s (%s): restic snapshots not in the repository: %v", set.ID, set.Phase, missing))
				continue
			}
		}
		h.verifiedSets[set.ID] = true
	}
}

// checkWAL: once the shipper has caught up with what PostgreSQL archived
// (pg_stat_archiver's last_archived_wal, and no finished file left in the
// spool), the store holds every segment from the first one on, without a
// gap, each decoding to the checksum it was shipped with.
func (h *harness) checkWAL(s step, all bool) {
	ctx := context.Background()
	last, err := h.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	if err != nil {
		h.violate(s, "no WAL segment lost", err.Error())
		return
	}
	// A backup history file (segment.offset.backup) is archived after
	// its segment.
	last = last[:min(len(last), 24)]
	failed, _ := h.psql("SELECT failed_count FROM pg_stat_archiver")
	deadline := time.Now().Add(2 * time.Minute)
	var a walobj.Archived
	for {
		a, err = walobj.ListArchived(ctx, h.store, lab.WALSource)
		spooled := spoolSegments(h.l.WALSpool(), last)
		if err == nil && len(a.Gaps) == 0 && a.Newest >= last && len(spooled) == 0 {
			break
		}
		if time.Now().After(deadline) {
			h.violate(s, "no WAL segment lost", fmt.Sprintf("2 minutes after the step: PostgreSQL archived up to %s; the store's newest is %s, gaps %v, err %v; still in the spool: %v",
				last, a.Newest, a.Gaps, err, spooled))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.rep.checked("no WAL segment lost, no gap", 1)
	if failed != "0" {
		h.violate(s, "no WAL segment lost", "PostgreSQL's archive_command failed "+failed+" times")
	}
	objs, err := h.store.List(ctx, "wal/"+lab.WALSource+"/")
	if err != nil {
		h.violate(s, "no WAL segment lost", err.Error())
		return
	}
	var names []string
	for _, o := range objs {
		if name, ok := strings.CutSuffix(filepath.Base(o.Key), walobj.ObjectSuffix); ok && walobj.Classify(name) == walobj.Segment {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	if h.walFirst == "" {
		h.walFirst = names[0]
	}
	if names[0] != h.walFirst {
		h.violate(s, "no WAL segment lost", fmt.Sprintf("the archive starts at %s, it started at %s", names[0], h.walFirst))
	}
	n := 0
	for _, name := range names {
		if !all && name <= h.walChecked {
			continue
		}
		n++
		dest := filepath.Join(h.t.TempDir(), name)
		id, err := h.l.SnapshotIdentity()
		if err != nil {
			h.t.Fatal(err)
		}
		if err := walobj.Fetch(ctx, h.store, lab.WALSource, name, dest, id); err != nil {
			h.violate(s, "archived WAL segments decode", fmt.Sprintf("%s: %v", name, err))
		}
		os.Remove(dest)
	}
	h.rep.checked("archived WAL segments decode", n)
	h.walChecked = names[len(names)-1]
}

// spoolSegments lists the finished files in the spool up to last: what the
// shipper has not shipped yet.
func spoolSegments(spool, last string) []string {
	entries, _ := os.ReadDir(spool)
	var out []string
	for _, e := range entries {
		if walobj.Classify(e.Name()) != walobj.Unknown && e.Name() <= last {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkBaseBackups: every base backup `pg ls` lists has its restic
// snapshot in the repository and its WAL in the archive.
func (h *harness) checkBaseBackups(s step, all bool) {
	r := h.run("pg", "ls", "-o", "json")
	h.rep.checked("listings answer", 1)
	var list printers.BaseBackupList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		h.violate(s, "listings answer", r.String())
		return
	}
	records, _, err := basebackup.List(context.Background(), h.store, lab.WALSource)
	if err != nil {
		h.violate(s, "listed base backups verify", err.Error())
		return
	}
	byID := map[string]*basebackup.BaseBackup{}
	for _, b := range records {
		byID[b.ID] = b
	}
	a, _ := walobj.ListArchived(context.Background(), h.store, lab.WALSource)
	var snaps map[string]bool
	for _, item := range list.Items {
		if h.verifiedBase[item.ID] && !all {
			continue
		}
		h.rep.checked("listed base backups verify", 1)
		b := byID[item.ID]
		switch {
		case b == nil:
			h.violate(s, "listed base backups verify", fmt.Sprintf("pg ls lists %s, the store has no record of it", item.ID))
		case b.StopSegment > a.Newest:
			h.violate(s, "listed base backups verify", fmt.Sprintf("%s needs WAL up to %s, the archive ends at %s", b.ID, b.StopSegment, a.Newest))
		default:
			if snaps == nil {
				if snaps, err = h.resticSnapshots(); err != nil {
					h.violate(s, "listed base backups verify", err.Error())
					return
				}
			}
			if !snaps[b.SnapshotID] {
				h.violate(s, "listed base backups verify", fmt.Sprintf("%s: restic snapshot %s is not in the repository", b.ID, b.SnapshotID))
				continue
			}
			h.verifiedBase[item.ID] = true
		}
	}
}

// restic runs restic on the lab's repository, straight to MinIO.
func (h *harness) restic(args ...string) ([]byte, error) {
	cfg := objstore.Config{URL: h.l.StoreURL(), Endpoint: h.env("DR_S3_ENDPOINT"), AccessKey: h.l.State.MinIOUser, SecretKey: h.l.State.MinIOSecret}
	loc, err := cfg.Restic(h.l.State.ClusterID+"/restic", h.t.TempDir())
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.l.Bin.Restic, append(append([]string{}, loc.Options...), args...)...)
	cmd.Env = append(append(os.Environ(), loc.Env...), "RESTIC_REPOSITORY="+loc.Repository, "RESTIC_PASSWORD_FILE="+h.l.ResticPasswordPath())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.String()...), fmt.Errorf("restic %s: %w", args[0], err)
	}
	return out, nil
}

// resticSnapshots asks the repository, with restic itself, which
// snapshots it holds (by id and short id).
func (h *harness) resticSnapshots() (map[string]bool, error) {
	out, err := h.restic("snapshots", "--no-lock", "--json")
	if err != nil {
		return nil, err
	}
	var snaps []struct {
		ID      string `json:"id"`
		ShortID string `json:"short_id"`
	}
	if err := json.Unmarshal(out, &snaps); err != nil {
		return nil, fmt.Errorf("restic snapshots --json: %w", err)
	}
	ids := map[string]bool{}
	for _, sn := range snaps {
		ids[sn.ID], ids[sn.ShortID] = true, true
	}
	return ids, nil
}
