package backupset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// Phases of a set.
const (
	Completed       = "Completed"
	PartiallyFailed = "PartiallyFailed"
	Failed          = "Failed"
)

// Set is sets/<id>.json.
type Set struct {
	// Version is the store format version (store.FormatVersion; sets
	// written before it existed have none and are read as 1).
	Version   int       `json:"version,omitempty"`
	ID        string    `json:"id"`
	ClusterID string    `json:"clusterID,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Phase     string    `json:"phase"`
	// Etcd is the set's etcd snapshot; nil when the set has none.
	Etcd  *EtcdPart  `json:"etcd,omitempty"`
	Files []FilePart `json:"files,omitempty"`
	// WAL is where each PostgreSQL WAL source stood when the set was made.
	WAL []WALMark `json:"wal,omitempty"`
	// Buckets are the passes of the application bucket sources run for
	// the set: each bucket is restorable as of its pass.
	Buckets []BucketPart `json:"buckets,omitempty"`
	// Error is why the whole set failed (interrupted, ...).
	Error string `json:"error,omitempty"`
}

// EtcdPart is the etcd snapshot taken for the set.
type EtcdPart struct {
	Node     string `json:"node"`
	Snapshot string `json:"snapshot,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Error    string `json:"error,omitempty"`
}

// FilePart is one node's restic snapshot.
type FilePart struct {
	Node       string   `json:"node"`
	SnapshotID string   `json:"snapshotID,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	PVCs       []string `json:"pvcs,omitempty"`
	Files      int64    `json:"files,omitempty"`
	Bytes      int64    `json:"bytes,omitempty"`
	BytesAdded int64    `json:"bytesAdded,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// WALMark is a WAL source's newest archived file at the set's time.
type WALMark struct {
	Node     string `json:"node"`
	Source   string `json:"source"`
	Timeline uint32 `json:"timeline,omitempty"`
	// LSN is the database's position at the set's time, when the agent
	// can ask the database; Segment the newest file in the store.
	LSN     string    `json:"lsn,omitempty"`
	Segment string    `json:"segment,omitempty"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error,omitempty"`
}

// BucketPart is one bucket source's pass, run on the etcd leader's agent.
type BucketPart struct {
	Node   string `json:"node"`
	Source string `json:"source"`
	// Pass is when the pass started: what bucket restore --to takes.
	Pass    time.Time `json:"pass,omitempty"`
	Listed  int64     `json:"listed,omitempty"`
	Copied  int64     `json:"copied,omitempty"`
	Deleted int64     `json:"deleted,omitempty"`
	// BytesUploaded is what the pass stored (less than it read when the
	// same bytes were stored before).
	BytesUploaded int64  `json:"bytesUploaded,omitempty"`
	Error         string `json:"error,omitempty"`
}

// Failed reports whether the part failed.
func (p FilePart) Failed() bool { return p.Error != "" }

// Decide sets the phase from the parts: Completed when every part
// succeeded, Failed when none did, PartiallyFailed in between.
func (s *Set) Decide() {
	ok, bad := 0, 0
	if s.Etcd != nil {
		if s.Etcd.Error != "" {
			bad++
		} else {
			ok++
		}
	}
	for _, f := range s.Files {
		if f.Failed() {
			bad++
		} else {
			ok++
		}
	}
	for _, b := range s.Buckets {
		if b.Error != "" {
			bad++
		} else {
			ok++
		}
	}
	switch {
	case s.Error != "" && ok == 0, ok == 0:
		s.Phase = Failed
	case bad > 0 || s.Error != "":
		s.Phase = PartiallyFailed
	default:
		s.Phase = Completed
	}
}

// Part finds the node's file part.
func (s *Set) Part(node string) (FilePart, bool) {
	for _, f := range s.Files {
		if f.Node == node {
			return f, true
		}
	}
	return FilePart{}, false
}

// ErrNotFound means no set has that id.
var ErrNotFound = errors.New("backup set not found")

var idRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// ValidateID checks a set id: it names a store key, a restic tag and an
// etcd snapshot, so lower-case letters, digits, '.' and '-'.
func ValidateID(id string) error {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("invalid backup name %q: use lower-case letters, digits, '.' and '-', up to 63 characters, starting and ending with a letter or digit", id)
	}
	return nil
}

// NewID names a set by its start time.
func NewID(t time.Time) string { return "backup-" + t.UTC().Format("20060102-150405") }

func key(id string) string { return path.Join("sets", id+".json") }

// Write stores the set (the last step of a backup), signed by sign
// (kubectl dr's client certificate; nil: unsigned).
func Write(ctx context.Context, store objstore.Store, s *Set, sign *signature.Signer) error {
	s.Version = drstore.FormatVersion
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := signature.Put(ctx, store, sign, key(s.ID), data); err != nil {
		return fmt.Errorf("write backup set %s to %s: %w", s.ID, store, err)
	}
	return nil
}

// maxRecord bounds what a set's record may take.
const maxRecord = 4 << 20

// Verified reads set id and checks it against its signature under p: only
// kubectl dr writes sets, so no node's certificate vouches for one (a
// node that could would point a restore at the snapshots it chose).
func Verified(ctx context.Context, store objstore.Store, p signature.Policy, id string) (*Set, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	data, _, err := p.Read(ctx, store, "backup set", key(id), maxRecord, signature.Owner{PluginOnly: true})
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no %q in %s (kubectl dr backup ls shows the sets)", ErrNotFound, id, store)
	}
	if err != nil {
		return nil, err
	}
	return decode(id, data)
}

// ListVerified is List without the sets p refuses, which go into skipped
// with why (a recovery plan never builds on a set it cannot trust).
func ListVerified(ctx context.Context, store objstore.Store, p signature.Policy) (sets []*Set, skipped []drstore.Skipped, err error) {
	all, skipped, err := List(ctx, store)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range all {
		v, err := Verified(ctx, store, p, s.ID)
		switch {
		case err == nil:
			sets = append(sets, v)
		case errors.Is(err, signature.ErrUnsigned), errors.Is(err, signature.ErrForged):
			skipped = append(skipped, drstore.Skipped{Key: key(s.ID), Reason: err})
		default:
			return nil, nil, err
		}
	}
	return sets, skipped, nil
}

// Exists reports whether a set with this id is stored.
func Exists(ctx context.Context, store objstore.Store, id string) (bool, error) {
	_, err := store.Stat(ctx, key(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, objstore.ErrNotFound):
		return false, nil
	}
	return false, err
}

// Read loads one set.
func Read(ctx context.Context, store objstore.Store, id string) (*Set, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	rc, err := store.Get(ctx, key(id))
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no %q in %s (kubectl dr backup ls shows the sets)", ErrNotFound, id, store)
	}
	if err != nil {
		return nil, fmt.Errorf("read backup set %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRecord))
	if err != nil {
		return nil, fmt.Errorf("read backup set %s: %w", id, err)
	}
	return decode(id, data)
}

func decode(id string, data []byte) (*Set, error) {
	var s Set
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, drstore.BadRecord(key(id), fmt.Errorf("not a backup set: %w", err))
	}
	if err := drstore.CheckVersion("backup set "+id, s.Version); err != nil {
		return nil, err
	}
	if s.ID != id {
		return nil, drstore.BadRecord(key(id), fmt.Errorf("it is the record of set %q", s.ID))
	}
	return &s, nil
}

// List loads every set, newest first. A record that cannot be used is
// left out and named in skipped; only a failing store is an error.
func List(ctx context.Context, store objstore.Store) (sets []*Set, skipped []drstore.Skipped, err error) {
	objs, err := store.List(ctx, "sets/")
	if err != nil {
		return nil, nil, fmt.Errorf("list backup sets in %s: %w", store, err)
	}
	var keys []string
	for _, o := range objs {
		if id, ok := strings.CutSuffix(path.Base(o.Key), ".json"); ok && ValidateID(id) == nil {
			keys = append(keys, o.Key)
		}
	}
	sets, skipped, err = drstore.ReadEach(keys, func(k string) (*Set, error) {
		return Read(ctx, store, strings.TrimSuffix(path.Base(k), ".json"))
	}, func(err error) bool { return errors.Is(err, ErrNotFound) })
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].Started.After(sets[j].Started) })
	return sets, skipped, nil
}

// Delete removes the set's record (its data is removed first, by the
// caller).
func Delete(ctx context.Context, store objstore.Store, id string) error {
	if err := store.Delete(ctx, key(id)); err != nil && !errors.Is(err, objstore.ErrNotFound) {
		return fmt.Errorf("delete backup set %s: %w", id, err)
	}
	if err := signature.Delete(ctx, store, key(id)); err != nil {
		return fmt.Errorf("delete backup set %s's signature: %w", id, err)
	}
	return nil
}
