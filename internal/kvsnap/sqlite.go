package kvsnap

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"

	// The pure-Go driver keeps the binaries static.
	_ "modernc.org/sqlite"
)

// sqliteHeader begins every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// isSQLite reports whether the file at path is a SQLite database: a k3s
// server's datastore (kine) snapshot.
func isSQLite(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil {
		return false, nil
	}
	return bytes.Equal(head, sqliteHeader), nil
}

// kineInternal are kine's own bookkeeping rows, not keys a client stored.
var kineInternal = map[string]bool{"compact_rev_key": true}

func openSQLite(path string) (*Snapshot, error) {
	// immutable: the file is a fetched copy nobody writes, so SQLite
	// takes no locks and reads no WAL beside it.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("immutable", "1")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'kine'`).Scan(&n); err != nil || n != 1 {
		db.Close()
		if err == nil {
			err = fmt.Errorf("no kine table: %w", ErrNotSnapshot)
		}
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	return &Snapshot{path: path, sql: db}, nil
}

// eachSQLite is Each over kine's table: one row per write (id is the
// revision), the newest row of a name holds its value or its deletion.
func (s *Snapshot) eachSQLite(prefix string, fn func(kv KeyValue) error) (revision int64, err error) {
	ctx := context.Background()
	tx, err := s.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("read snapshot %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM kine`).Scan(&revision); err != nil {
		return 0, fmt.Errorf("read snapshot %s: %w (not a kine database?)", s.path, err)
	}
	// Names are compared as bytes (BLOB order), as etcd orders keys.
	where, args := "", []any{}
	if prefix != "" {
		where = " WHERE CAST(name AS BLOB) >= CAST(? AS BLOB)"
		args = append(args, prefix)
		if end, ok := prefixEnd(prefix); ok {
			where += " AND CAST(name AS BLOB) < CAST(? AS BLOB)"
			args = append(args, end)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT kv.id, kv.name, kv.created, kv.create_revision, kv.deleted, kv.value FROM kine kv
		JOIN (SELECT MAX(id) AS id FROM kine`+where+` GROUP BY name) newest ON kv.id = newest.id
		ORDER BY CAST(kv.name AS BLOB)`, args...)
	if err != nil {
		return revision, fmt.Errorf("read snapshot %s: %w", s.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, created, createRev, deleted sql.NullInt64
			name                            string
			value                           []byte
		)
		if err := rows.Scan(&id, &name, &created, &createRev, &deleted, &value); err != nil {
			return revision, fmt.Errorf("read snapshot %s: %w", s.path, err)
		}
		if deleted.Int64 != 0 || kineInternal[name] {
			continue
		}
		// A creating row's create revision is its own id.
		cr := createRev.Int64
		if created.Int64 != 0 || cr == 0 {
			cr = id.Int64
		}
		if err := fn(KeyValue{Key: []byte(name), Value: value, CreateRevision: cr, ModRevision: id.Int64}); err != nil {
			return revision, err
		}
	}
	if err := rows.Err(); err != nil {
		return revision, fmt.Errorf("read snapshot %s: %w", s.path, err)
	}
	return revision, nil
}

// prefixEnd is the smallest key after every key starting with prefix;
// false when there is none (a prefix of 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
