package dbsnap

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the metadata of one etcd snapshot. In the store it is
// etcd/<node>/<name>.json, written only after the data object is verified:
// a snapshot without it is not a good snapshot.
type Snapshot struct {
	// Version is the store format version (store.FormatVersion; records
	// written before it existed have none and are read as 1).
	Version   int       `json:"version,omitempty"`
	Name      string    `json:"name"`
	Node      string    `json:"node"`
	Created   time.Time `json:"created"`
	ClusterID string    `json:"clusterID,omitempty"`
	// EtcdClusterID is etcd's own cluster id (hex).
	EtcdClusterID string `json:"etcdClusterID,omitempty"`
	// Datastore is what the snapshot is a copy of: "sqlite" for k3s's
	// state.db served through kine (a SQLite database file), empty or
	// "etcd" for an etcd snapshot (a bolt database and etcd's trailer).
	Datastore string `json:"datastore,omitempty"`
	// Revision is etcd's, or kine's (the newest row id) for SQLite.
	Revision    int64  `json:"revision"`
	EtcdVersion string `json:"etcdVersion,omitempty"`
	// Size and SHA256 are of the snapshot file as etcd streamed it (the
	// bolt database followed by etcd's sha256 trailer), as k3s keeps it;
	// for SQLite, of the database file the online backup wrote.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// StoredSize and StoredSHA256 are of the object in the store
	// (compressed, then encrypted when Encryption is set).
	StoredSize   int64  `json:"storedSize,omitempty"`
	StoredSHA256 string `json:"storedSHA256,omitempty"`
	Compression  string `json:"compression"`
	Encryption   string `json:"encryption,omitempty"`
	StoreKey     string `json:"storeKey,omitempty"`
	LocalPath    string `json:"localPath,omitempty"`
	Uploaded     bool   `json:"uploaded"`
	UploadError  string `json:"uploadError,omitempty"`
	BackupSet    string `json:"backupSet,omitempty"`
	Scheduled    bool   `json:"scheduled,omitempty"`
	// Bootstrap records the server token (and encryption config) kept
	// encrypted beside the snapshot, for a restore onto a new host.
	Bootstrap *Bootstrap `json:"bootstrap,omitempty"`
	// Origin is where the snapshot came from: empty for one an agent took,
	// OriginImported for a file someone else made, brought in by
	// `kubectl dr etcd snapshot import`.
	Origin string `json:"origin,omitempty"`
	// Imported describes an imported snapshot's file as it was given.
	Imported *Imported `json:"imported,omitempty"`
}

// Origins of a snapshot (Snapshot.Origin, and what ls --all marks).
const (
	OriginImported = "imported"
	OriginK3sLocal = "k3s-local"
	OriginK3sS3    = "k3s-s3"
)

// OriginName is Origin as a table shows it: "dr" for the agents' own.
func (s *Snapshot) OriginName() string {
	if s.Origin == "" {
		return "dr"
	}
	return s.Origin
}

// Imported is what an imported snapshot was before it came in.
type Imported struct {
	// OriginalName is the file's base name (or k3s's snapshot name).
	OriginalName string `json:"originalName"`
	// Kind is what the file was: etcdctl, k3s-zip, bolt-db (internal/snapfile).
	Kind string `json:"kind"`
	// Size and SHA256 are of the file as given; the snapshot's own are of
	// the etcdctl-format file stored (unzipped, or with etcd's trailer
	// added to a member's db).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// EntryName is a .zip's entry; NoHash says the file had no trailer and
	// was taken on a bbolt walk instead (--no-hash).
	EntryName string `json:"entryName,omitempty"`
	NoHash    bool   `json:"noHash,omitempty"`
	// Host is the machine the file was read on, ImportedAt when.
	Host       string    `json:"host,omitempty"`
	ImportedAt time.Time `json:"importedAt"`
}

// DatastoreSQLite marks a snapshot of k3s's SQLite datastore.
const DatastoreSQLite = "sqlite"

// DatastoreKind is the snapshot's datastore, "etcd" when the record names
// none (every record written before SQLite snapshots existed).
func (s *Snapshot) DatastoreKind() string {
	if s.Datastore == "" {
		return "etcd"
	}
	return s.Datastore
}

// Encrypted reports whether the stored object is encrypted.
func (s *Snapshot) Encrypted() bool { return s.Encryption != "" }

// ErrChecksum means a snapshot's bytes do not match its checksum.
var ErrChecksum = errors.New("snapshot checksum mismatch")

// ErrInvalidName is returned for snapshot names that cannot be used.
var ErrInvalidName = errors.New("invalid snapshot name")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateName checks a user-given name: it becomes part of a file name and
// a store key, so no '/', no "..", no leading dot.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w %q: use letters, digits, '.', '_' and '-' (no '/'), up to 128 characters", ErrInvalidName, name)
	}
	return nil
}

// FileName is k3s's naming: <name>-<node>-<unix time>.
func FileName(name, node string, t time.Time) string {
	return name + "-" + node + "-" + strconv.FormatInt(t.Unix(), 10)
}

// DataKey is where a snapshot's data object lives, relative to the
// cluster's prefix.
func DataKey(node, file string, encrypted bool) string {
	k := path.Join("etcd", node, file+".db.zst")
	if encrypted {
		k += ".age"
	}
	return k
}

// MetaKey is where a snapshot's metadata record lives.
func MetaKey(node, file string) string { return path.Join("etcd", node, file+".json") }
