package etcdsnap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// k3s without etcd keeps the cluster in server/db/state.db, served to the
// API server by kine: one table, kine, a row per write (id is the
// revision), the newest row of a name its current value, deleted=1 a
// deletion. kine runs it in WAL mode and checkpoints after compaction
// with wal_checkpoint(FULL), which waits for readers up to its busy
// timeout: every read here is one short read transaction.

// sqliteMagic opens every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// IsSQLiteFile reports whether the file at path is a SQLite database.
func IsSQLiteFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	_, err = io.ReadFull(f, head)
	return err == nil && bytes.Equal(head, sqliteMagic)
}

// KeyReader reads the newest value of every key of a datastore at one
// revision: a snapshot file (bolt or SQLite) or a live database.
type KeyReader interface {
	ReadKeys(ctx context.Context) (*Contents, error)
}

// SnapshotKeys is the key reader of a snapshot file, by its format.
func SnapshotKeys(path string) KeyReader {
	if IsSQLiteFile(path) {
		return SQLiteKeys{Path: path}
	}
	return boltKeys(path)
}

type boltKeys string

func (b boltKeys) ReadKeys(context.Context) (*Contents, error) { return SnapshotContents(string(b)) }

// SQLiteKeys reads kine's table in a SQLite database: a snapshot's, or the
// live state.db (while kine writes it).
type SQLiteKeys struct{ Path string }

// kineInternal are kine's own bookkeeping rows, not keys a client stored.
var kineInternal = map[string]bool{"compact_rev_key": true}

// ReadKeys reads the newest row of every name in one read transaction,
// deleted names left out; the revision is the newest row's id.
func (k SQLiteKeys) ReadKeys(ctx context.Context) (*Contents, error) {
	db, err := openSQLite(k.Path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path, err)
	}
	defer tx.Rollback()
	c := &Contents{Keys: map[string][sha256.Size]byte{}}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM kine`).Scan(&c.Revision); err != nil {
		return nil, fmt.Errorf("read %s: %w (not a kine database?)", k.Path, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT kv.name, kv.deleted, kv.value FROM kine kv
		JOIN (SELECT MAX(id) AS id FROM kine GROUP BY name) newest ON kv.id = newest.id`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name    string
			deleted int64
			value   []byte
		)
		if err := rows.Scan(&name, &deleted, &value); err != nil {
			return nil, fmt.Errorf("read %s: %w", k.Path, err)
		}
		if deleted != 0 || kineInternal[name] {
			continue
		}
		c.Keys[name] = sha256.Sum256(value)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path, err)
	}
	return c, nil
}

// sqliteBusy is how long the agent's connection waits for a lock kine
// holds; kine's own writers wait up to 30 s for ours.
const sqliteBusy = 10 * time.Second

func openSQLite(path string, readOnly bool) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusy.Milliseconds()))
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// backuper is the driver connection's online backup (modernc.org/sqlite).
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// BackupSQLite copies the database at src to a new file dst with SQLite's
// online backup, in one step: one read transaction, as long as copying
// the pages takes (a backup in smaller steps restarts whenever kine
// writes, and under steady writes never ends). The copy is consistent at
// one revision whatever kine writes meanwhile. dst is synced; it returns
// the copy's size.
func BackupSQLite(ctx context.Context, src, dst string) (int64, error) {
	db, err := openSQLite(src, true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", src, err)
	}
	defer conn.Close()
	// The copy needs no journal of its own: a failed one is removed.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(off)")
	q.Add("_pragma", "synchronous(off)")
	err = conn.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return errors.New("the SQLite driver has no online backup")
		}
		bk, err := b.NewBackup("file:" + dst + "?" + q.Encode())
		if err != nil {
			return err
		}
		_, err = bk.Step(-1)
		if ferr := bk.Finish(); err == nil {
			err = ferr
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("back up %s: %w", src, err)
	}
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", dst, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// sqliteRevision is the newest row id of kine's table in the copy.
func sqliteRevision(ctx context.Context, path string) (int64, error) {
	db, err := openSQLite(path, true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var rev int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM kine`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read the revision of %s: %w (not a kine database?)", path, err)
	}
	return rev, nil
}

// CheckSQLite runs SQLite's integrity check on a database file and makes
// sure it holds kine's table: what a restore puts in place must open.
func CheckSQLite(ctx context.Context, path string) error {
	db, err := openSQLite(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&res); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("check %s: integrity check: %s", path, res)
	}
	if _, err := sqliteRevision(ctx, path); err != nil {
		return err
	}
	return nil
}

// saveSQLite is Save for a server on SQLite: the online backup into a
// temporary file beside the local copy's name, then one pass over it that
// hashes it and streams it compressed (and encrypted) to the store, then
// the local copy named the k3s way and the record, as for etcd.
func (s *Snapshotter) saveSQLite(ctx context.Context, req SaveRequest, progress func(string, int64, int64)) (*dbsnap.Snapshot, error) {
	created := s.now().UTC()
	file := dbsnap.FileName(req.Name, s.Node, created)
	snap := &dbsnap.Snapshot{
		Name: file, Node: s.Node, Created: created, ClusterID: s.ClusterID,
		Datastore: dbsnap.DatastoreSQLite, Compression: "zstd",
		BackupSet: req.BackupSet, Scheduled: req.Scheduled,
	}
	if s.Recipient != nil {
		snap.Encryption = "age"
	}
	dir := s.Layout.SnapshotsDir()
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshots dir: %w", err)
	}
	local := filepath.Join(dir, file)
	var rnd [6]byte
	rand.Read(rnd[:])
	// A .part name: listings skip it, so a copy cut short is never shown.
	tmp := local + "." + hex.EncodeToString(rnd[:]) + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	f.Close()
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmp)
		}
	}()
	var total int64
	if st, err := os.Stat(s.Layout.StateDB()); err == nil {
		total = st.Size()
	}
	progress("snapshot", 0, total)
	n, err := BackupSQLite(ctx, s.Layout.StateDB(), tmp)
	if err != nil {
		return nil, err
	}
	progress("snapshot", n, n)
	if snap.Revision, err = sqliteRevision(ctx, tmp); err != nil {
		return nil, err
	}

	in, err := os.Open(tmp)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var up *uploader
	if s.Store != nil {
		snap.StoreKey = dbsnap.DataKey(s.Node, file, snap.Encrypted())
		if up, err = startUpload(ctx, s.Store, snap.StoreKey, s.Recipient); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	var w io.Writer = h
	if up != nil {
		w = io.MultiWriter(h, up)
	}
	read, err := io.Copy(w, &progressReader{r: in, total: n, progress: progress})
	if err == nil && read != n {
		err = fmt.Errorf("read %d bytes of %s, the backup wrote %d", read, tmp, n)
	}
	if err != nil {
		if up != nil {
			up.Abort(err)
		}
		return nil, fmt.Errorf("read the copy of %s: %w", s.Layout.StateDB(), err)
	}
	snap.Size, snap.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if err := durable.Rename(tmp, local); err != nil {
		if up != nil {
			up.Abort(err)
		}
		return nil, err
	}
	committed = true
	snap.LocalPath = local
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
	}
	return snap, nil
}

// progressReader tells progress the bytes read so far, at most every
// 200 ms.
type progressReader struct {
	r        io.Reader
	n, total int64
	last     time.Time
	progress func(string, int64, int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond || err == io.EOF {
		p.last = now
		p.progress("upload", p.n, p.total)
	}
	return n, err
}

// EachValue calls fn with the newest value of every live key under prefix
// in a snapshot file (bolt or SQLite: internal/kvsnap reads both), in key
// order.
func EachValue(_ context.Context, path, prefix string, fn func(key string, value []byte) error) error {
	s, err := kvsnap.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Each(prefix, func(kv kvsnap.KeyValue) error { return fn(string(kv.Key), kv.Value) })
	return err
}
