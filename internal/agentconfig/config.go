package agentconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Defaults a k3s node gets without configuring anything.
const (
	DefaultListen       = "127.0.0.1:9650"
	DefaultDataDir      = "/var/lib/rancher/k3s"
	DefaultEtcdEndpoint = "https://127.0.0.1:2379"
	DefaultStateDir     = "/var/lib/dr-agent"
	DefaultSchedule     = "0 */6 * * *"
	DefaultScheduleName = "dr-auto"
	DefaultMetrics      = "127.0.0.1:9651"
)

// DefaultRetention keeps what k3s keeps (5) and a week of dailies.
func DefaultRetention() Retention { return Retention{KeepLast: 5, KeepDaily: 7} }

// Config is the agent configuration file (YAML).
type Config struct {
	// NodeName defaults to $NODE_NAME (the DaemonSet's downward API), then
	// the host name.
	NodeName string `json:"nodeName,omitempty"`
	// Listen is the gRPC address; keep it on loopback, the plugin comes in
	// through a port-forward.
	Listen string `json:"listen,omitempty"`
	// DataDir is k3s's --data-dir.
	DataDir string `json:"dataDir,omitempty"`
	// StateDir keeps the agent's own records (snapshots not yet uploaded,
	// restore plans); default /var/lib/dr-agent.
	StateDir string     `json:"stateDir,omitempty"`
	TLS      mtls.Files `json:"tls"`
	// ClusterID names the cluster in the store (the kube-system namespace's
	// UID; `kubectl dr install` writes it).
	ClusterID string          `json:"clusterID,omitempty"`
	Store     objstore.Config `json:"store,omitempty"`
	Etcd      Etcd            `json:"etcd,omitempty"`
	Restic    Restic          `json:"restic,omitempty"`
	WAL       WAL             `json:"wal,omitempty"`
	Buckets   Buckets         `json:"buckets,omitempty"`
	Restore   Restore         `json:"restore,omitempty"`
	Drill     Drill           `json:"drill,omitempty"`
	// MetricsAddress serves Prometheus metrics and /healthz (default
	// 127.0.0.1:9651); "off" turns it off.
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// APIServer is HOST:PORT where the agent's pod reaches the Kubernetes
	// API (to map PersistentVolumes to their claims). Default: the
	// in-cluster service ($KUBERNETES_SERVICE_HOST), which a host-network
	// pod reaches only through kube-proxy; on a cluster without it, name
	// the API server's address on the node (k3s servers: 127.0.0.1:6443).
	APIServer string `json:"apiServer,omitempty"`

	// hostKeys is the digest of the host keys as the file wrote them,
	// before defaults (HostKeysSHA256).
	hostKeys string
}

// HostKeys are the keys whose values the agent runs as programs on the
// node or writes beneath as root: install owns them (its flags set them),
// and an agent started with their digest refuses a file whose values
// differ. Editing them is root on every node.
var HostKeys = []string{
	"dataDir", "stateDir",
	"restic.binary", "restic.cacheDir",
	"restore.flavor", "restore.stopCommand", "restore.startCommand", "restore.k3sBinary", "restore.etcdDataDir",
	// Where the agent sends what it reads: its service account's token,
	// and a bucket source's key files (an access key goes out in the
	// clear: a key file naming any file on the node, with an endpoint of
	// one's own, would send that file away).
	"apiServer",
	"buckets.sources[].bucket.endpoint", "buckets.sources[].bucket.accessKeyFile",
	"buckets.sources[].bucket.secretKeyFile", "buckets.sources[].bucket.caFile",
}

// HostKeysSHA256 is the sha256 of the host keys' values as the file wrote
// them (defaults not applied): install passes it to the DaemonSet's agents
// (dr-agent serve --host-keys-sha256), which refuse a configuration whose
// host keys someone changed in the ConfigMap.
func (c *Config) HostKeysSHA256() string { return c.hostKeys }

func hostKeysDigest(c *Config) string {
	type access struct{ Name, Endpoint, AccessKeyFile, SecretKeyFile, CAFile string }
	var buckets []access
	for _, s := range c.Buckets.Sources {
		b := s.Bucket
		buckets = append(buckets, access{s.Name, b.Endpoint, b.AccessKeyFile, b.SecretKeyFile, b.CAFile})
	}
	data, err := json.Marshal(struct {
		DataDir, StateDir, ResticBinary, ResticCacheDir string
		Restore                                         Restore
		APIServer                                       string   `json:",omitempty"`
		Buckets                                         []access `json:",omitempty"`
	}{c.DataDir, c.StateDir, c.Restic.Binary, c.Restic.CacheDir, c.Restore, c.APIServer, buckets})
	if err != nil {
		panic(err) // strings and string slices always marshal
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// CheckHostKeys refuses a configuration whose host keys are not the ones
// install wrote (want is the digest install gave the agent; empty checks
// nothing: an agent run by hand trusts its own file).
func (c *Config) CheckHostKeys(want string) error {
	if want == "" || c.hostKeys == want {
		return nil
	}
	return fmt.Errorf("%w: the keys %s differ from what kubectl dr install wrote: the agent runs them as root on the node, so only install changes them (re-run kubectl dr install with its flags; see docs/security.md)", ErrHostKeys, strings.Join(HostKeys, ", "))
}

// ErrHostKeys is a configuration whose host keys install did not write.
var ErrHostKeys = errors.New("host keys changed outside install")

// Retention is how many snapshots to keep: the newest KeepLast, plus the
// newest of each of the last N hours, days, weeks and months (GFS).
type Retention struct {
	KeepLast    int `json:"keepLast,omitempty"`
	KeepHourly  int `json:"keepHourly,omitempty"`
	KeepDaily   int `json:"keepDaily,omitempty"`
	KeepWeekly  int `json:"keepWeekly,omitempty"`
	KeepMonthly int `json:"keepMonthly,omitempty"`
}

// IsZero reports whether nothing is configured (keep everything).
func (r Retention) IsZero() bool { return r == Retention{} }

// Etcd says how to reach the node's local etcd member.
type Etcd struct {
	Endpoint string `json:"endpoint,omitempty"`
	// Certificate files; default to k3s's under <dataDir>/server/tls/etcd/.
	CA   string `json:"ca,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// KineEndpoint is where a server on SQLite serves its datastore
	// through kine (default k3s's unix://<dataDir>/server/kine.sock): a
	// restore waits until it answers again.
	KineEndpoint string `json:"kineEndpoint,omitempty"`
	// SnapshotRecipientFile holds the public half of the snapshot key, an
	// age recipient (age1...); when set, snapshots, their bootstrap files
	// and bucket copies are encrypted on the node before they leave it.
	// The private identity never lives on the node: a restore, preview or
	// drill brings it with its request and it is kept in memory only.
	SnapshotRecipientFile string `json:"snapshotRecipientFile,omitempty"`
	// SnapshotKeyFile is the older way: the private identity itself
	// (AGE-SECRET-KEY-1...). The agent encrypts to its recipient and
	// decrypts with it when a request brings no key, and warns at start
	// that the private key should not live on nodes. Re-running kubectl dr
	// install moves an agent to SnapshotRecipientFile.
	SnapshotKeyFile string `json:"snapshotKeyFile,omitempty"`
	// Schedule is a cron expression for automatic snapshots (k3s's default:
	// every 6 hours); "off" turns them off. Only the leader's agent acts.
	Schedule string `json:"schedule,omitempty"`
	// ScheduleName prefixes scheduled snapshots' names.
	ScheduleName string    `json:"scheduleName,omitempty"`
	Retention    Retention `json:"retention,omitempty"`
	// RPOTarget is how old the cluster's newest snapshot may get before
	// kubectl dr status reports the target missed (a Go duration such as
	// "12h", or "off"); default twice the schedule's longest interval,
	// off when the schedule is. After Parse it is a duration or "off".
	RPOTarget string `json:"rpoTarget,omitempty"`
}

// Restic configures file backups: the restic binary shipped with the
// agent, the repository password, which paths each node backs up, and the
// schedule with its retention.
type Restic struct {
	// Binary defaults to "restic" next to the dr-agent binary, then on PATH.
	Binary string `json:"binary,omitempty"`
	// PasswordFile holds the repository password (a mounted Secret). It is
	// handed to restic as a file, never on a command line.
	PasswordFile string `json:"passwordFile,omitempty"`
	// Paths are the directories (globs allowed) every node backs up;
	// default the local-path provisioner's <dataDir>/storage.
	Paths []string `json:"paths,omitempty"`
	// Exclude are restic --exclude patterns.
	Exclude []string `json:"exclude,omitempty"`
	// Nodes overrides Paths and Exclude for the nodes named.
	Nodes map[string]PathSet `json:"nodes,omitempty"`
	// Schedule is a cron expression for automatic file backups; default
	// "off". Each node backs up its own paths.
	Schedule string `json:"schedule,omitempty"`
	// Retention applies to scheduled file backups (restic forget --prune);
	// backups made by hand or in a set are removed only with backup rm.
	Retention Retention `json:"retention,omitempty"`
	// CacheDir is restic's cache; default <stateDir>/restic-cache.
	CacheDir string `json:"cacheDir,omitempty"`
	// RPOTarget is how old each node's newest file backup may get; the
	// same rule and values as etcd.rpoTarget.
	RPOTarget string `json:"rpoTarget,omitempty"`
}

// Restore says how this node restores etcd and which host actions stop
// and start what runs it.
type Restore struct {
	// Flavor is "k3s" (k3s server --cluster-reset; the default) or "etcd"
	// (a kubeadm-style member: a new data dir built from the snapshot
	// beside the member's, swapped in with the member stopped).
	Flavor string `json:"flavor,omitempty"`
	// StopCommand and StartCommand stop and start k3s (or etcd). Default
	// for k3s: systemctl stop|start k3s, through nsenter -t 1 when the
	// agent runs in a container. The etcd flavour needs both configured.
	StopCommand  []string `json:"stopCommand,omitempty"`
	StartCommand []string `json:"startCommand,omitempty"`
	// K3sBinary runs the cluster reset (default /usr/local/bin/k3s).
	K3sBinary string `json:"k3sBinary,omitempty"`
	// EtcdDataDir is the member's data dir for the etcd flavour (default
	// <dataDir>/server/db/etcd, where k3s keeps it).
	EtcdDataDir string `json:"etcdDataDir,omitempty"`
}

// Restore flavours.
const (
	FlavorK3s  = "k3s"
	FlavorEtcd = "etcd"
)

// WAL lists the PostgreSQL WAL spools this node ships.
type WAL struct {
	Sources []WALSource `json:"sources,omitempty"`
}

// WALSource is one database's spool: a directory on the node (a hostPath
// the PostgreSQL pod mounts too) that archive_command copies finished WAL
// files into.
type WALSource struct {
	// Name names the source in the store (wal/<name>/) and in commands.
	Name  string `json:"name"`
	Spool string `json:"spool"`
	// Concurrency is how many files upload at once (default 4).
	Concurrency int `json:"concurrency,omitempty"`
	// SpoolWarnFreeBytes: status and metrics warn when the spool's file
	// system has less free space (default 1 GiB).
	SpoolWarnFreeBytes int64 `json:"spoolWarnFreeBytes,omitempty"`
	// Connection reaches the database for base backups (a libpq
	// connection string, e.g. "host=10.42.0.12 user=postgres"), and PGData
	// is its data directory as this node sees it; both optional, needed
	// for base backups.
	Connection string `json:"connection,omitempty"`
	PGData     string `json:"pgdata,omitempty"`
	// BaseBackupSchedule is a cron expression for automatic base backups
	// (default "off").
	BaseBackupSchedule string `json:"baseBackupSchedule,omitempty"`
	// BaseBackupRetention: after each scheduled base backup (and on
	// kubectl dr pg prune) the base backups beyond it are removed, with the
	// WAL only they could use. Default: the last 2 and a week of dailies.
	BaseBackupRetention Retention `json:"baseBackupRetention,omitempty"`
	// RPOTarget is how old the newest shipped WAL file may get (a Go
	// duration or "off"; default 5m). An idle database writes no WAL:
	// set PostgreSQL's archive_timeout below it.
	RPOTarget string `json:"rpoTarget,omitempty"`
}

// DefaultWALRPOTarget is a WAL source's default RPO target.
const DefaultWALRPOTarget = 5 * time.Minute

// DefaultBaseBackupRetention keeps a week of point-in-time recovery with a
// daily schedule, and the last two whatever the schedule.
func DefaultBaseBackupRetention() Retention { return Retention{KeepLast: 2, KeepDaily: 7} }

var walNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Buckets lists the application buckets the agents back up (the etcd
// leader's agent runs them).
type Buckets struct {
	Sources []BucketSource `json:"sources,omitempty"`
}

// BucketSource is one application bucket: where it is, which part of it,
// how often, and how long its history is kept.
type BucketSource struct {
	// Name names the source in the store (buckets/<name>/) and in commands.
	Name string `json:"name"`
	// Bucket says where: url s3://BUCKET, endpoint, credentials from key
	// files (a mounted Secret), as the store's settings.
	Bucket objstore.Config `json:"bucket"`
	// Prefix backs up only the keys starting with it.
	Prefix string `json:"prefix,omitempty"`
	// Mode is "continuous" (a pass every Interval) or a cron expression;
	// default continuous.
	Mode string `json:"mode,omitempty"`
	// Interval is the pause between continuous passes (default 30s).
	Interval string `json:"interval,omitempty"`
	// RetentionDays keeps this many days of history (default 90); the
	// newest version of a live object is always kept.
	RetentionDays int `json:"retentionDays,omitempty"`
	// Concurrency is how many objects copy at once (default 8).
	Concurrency int `json:"concurrency,omitempty"`
	// RPOTarget is how old the newest finished pass may get before
	// kubectl dr status reports the target missed (a Go duration, or
	// "off", the default).
	RPOTarget string `json:"rpoTarget,omitempty"`
}

// Bucket source defaults.
const (
	ModeContinuous             = "continuous"
	DefaultBucketInterval      = 30 * time.Second
	DefaultBucketRetentionDays = 90
	DefaultBucketConcurrency   = 8
)

// PassInterval is a continuous source's pause between passes.
func (b BucketSource) PassInterval() time.Duration {
	d, err := time.ParseDuration(b.Interval)
	if err != nil || d <= 0 {
		return DefaultBucketInterval
	}
	return d
}

func (c *Config) completeBuckets() error {
	seen := map[string]bool{}
	for i := range c.Buckets.Sources {
		src := &c.Buckets.Sources[i]
		switch {
		case !walNameRE.MatchString(src.Name):
			return fmt.Errorf("buckets.sources[%d].name %q: use lower-case letters, digits and '-'", i, src.Name)
		case seen[src.Name]:
			return fmt.Errorf("buckets.sources: %q appears twice", src.Name)
		case src.Bucket.URL == "":
			return fmt.Errorf("buckets.sources %s: bucket.url is required (s3://BUCKET)", src.Name)
		}
		seen[src.Name] = true
		if src.Mode == "" {
			src.Mode = ModeContinuous
		}
		if src.Mode != ModeContinuous {
			if _, err := ParseSchedule(src.Mode); err != nil {
				return fmt.Errorf("buckets.sources %s: mode: want continuous or a cron expression: %w", src.Name, err)
			}
		}
		if src.Interval != "" {
			if d, err := time.ParseDuration(src.Interval); err != nil || d <= 0 {
				return fmt.Errorf("buckets.sources %s: interval %q: want a positive duration such as 30s", src.Name, src.Interval)
			}
		}
		if src.RetentionDays < 0 {
			return fmt.Errorf("buckets.sources %s: retentionDays %d: want a positive number of days", src.Name, src.RetentionDays)
		}
		if src.RetentionDays == 0 {
			src.RetentionDays = DefaultBucketRetentionDays
		}
		if src.Concurrency <= 0 {
			src.Concurrency = DefaultBucketConcurrency
		}
		if src.RPOTarget == "" {
			src.RPOTarget = TargetOff
		}
		if err := checkTarget("buckets.sources "+src.Name+": rpoTarget", src.RPOTarget); err != nil {
			return err
		}
	}
	return nil
}

// PathSet is one node's paths and excludes.
type PathSet struct {
	Paths   []string `json:"paths,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// PathsFor is what node backs up.
func (r Restic) PathsFor(node string) PathSet {
	if ps, ok := r.Nodes[node]; ok {
		return ps
	}
	return PathSet{Paths: r.Paths, Exclude: r.Exclude}
}

// DefaultFileRetention keeps a week of dailies and a month of weeklies.
func DefaultFileRetention() Retention { return Retention{KeepLast: 3, KeepDaily: 7, KeepWeekly: 4} }

// Load reads and validates the file, applying defaults.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return Parse(data, path)
}

// Parse validates a configuration and applies defaults; path names it in
// errors.
func Parse(data []byte, path string) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parse agent config %s: %w", path, err)
	}
	c.hostKeys = hostKeysDigest(&c)
	if err := c.complete(); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}

// LoadStore reads only the store settings and cluster id of a config file:
// an agent's, or the small one `pg restore` writes for restore_command.
func LoadStore(path string) (string, objstore.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", objstore.Config{}, fmt.Errorf("read config: %w", err)
	}
	var c struct {
		ClusterID string          `json:"clusterID"`
		Store     objstore.Config `json:"store"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", objstore.Config{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.Store.URL == "" {
		return "", objstore.Config{}, fmt.Errorf("%s configures no store", path)
	}
	return c.ClusterID, c.Store, nil
}

// Local completes a configuration for the node-local commands, which serve
// nothing: as Parse, without requiring the TLS files.
func Local(c Config) (*Config, error) {
	if c.TLS.CA == "" && c.TLS.Cert == "" && c.TLS.Key == "" {
		c.TLS.CA, c.TLS.Cert, c.TLS.Key = "-", "-", "-"
	}
	if err := c.complete(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) complete() error {
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no nodeName and no host name: %w", err)
		}
		c.NodeName = h
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("dataDir %q must be an absolute path", c.DataDir)
	}
	switch c.MetricsAddress {
	case "":
		c.MetricsAddress = DefaultMetrics
	case "off":
		c.MetricsAddress = ""
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Etcd.Schedule == "" {
		c.Etcd.Schedule = DefaultSchedule
	}
	if c.Etcd.ScheduleName == "" {
		c.Etcd.ScheduleName = DefaultScheduleName
	}
	if c.Etcd.Retention.IsZero() {
		c.Etcd.Retention = DefaultRetention()
	}
	if c.Etcd.KineEndpoint == "" {
		c.Etcd.KineEndpoint = "unix://" + filepath.Join(c.DataDir, "server", "kine.sock")
	}
	if c.Etcd.Endpoint == "" {
		c.Etcd.Endpoint = DefaultEtcdEndpoint
	}
	tlsDir := filepath.Join(c.DataDir, "server", "tls", "etcd")
	if c.Etcd.CA == "" {
		c.Etcd.CA = filepath.Join(tlsDir, "server-ca.crt")
	}
	if c.Etcd.Cert == "" {
		c.Etcd.Cert = filepath.Join(tlsDir, "client.crt")
	}
	if c.Etcd.Key == "" {
		c.Etcd.Key = filepath.Join(tlsDir, "client.key")
	}
	if c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "" {
		return errors.New("tls.ca, tls.cert and tls.key are required: the agent only serves mTLS")
	}
	if c.Restic.Binary == "" {
		c.Restic.Binary = "restic"
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "restic"); fileExists(p) {
				c.Restic.Binary = p
			}
		}
	}
	if c.Restic.Paths == nil {
		c.Restic.Paths = []string{filepath.Join(c.DataDir, "storage")}
	}
	for node, ps := range c.Restic.Nodes {
		for _, p := range ps.Paths {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("restic.nodes.%s.paths: %q must be an absolute path", node, p)
			}
		}
	}
	for _, p := range c.Restic.Paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("restic.paths: %q must be an absolute path", p)
		}
	}
	if c.Restic.Schedule == "" {
		c.Restic.Schedule = "off"
	}
	if c.Restic.Retention.IsZero() {
		c.Restic.Retention = DefaultFileRetention()
	}
	seen := map[string]bool{}
	for i := range c.WAL.Sources {
		src := &c.WAL.Sources[i]
		switch {
		case !walNameRE.MatchString(src.Name):
			return fmt.Errorf("wal.sources[%d].name %q: use lower-case letters, digits and '-'", i, src.Name)
		case seen[src.Name]:
			return fmt.Errorf("wal.sources: %q appears twice", src.Name)
		case !filepath.IsAbs(src.Spool):
			return fmt.Errorf("wal.sources %s: spool %q must be an absolute path", src.Name, src.Spool)
		}
		seen[src.Name] = true
		if src.Concurrency <= 0 {
			src.Concurrency = 4
		}
		if src.SpoolWarnFreeBytes <= 0 {
			src.SpoolWarnFreeBytes = 1 << 30
		}
		if src.BaseBackupSchedule == "" {
			src.BaseBackupSchedule = "off"
		}
		if src.BaseBackupRetention.IsZero() {
			src.BaseBackupRetention = DefaultBaseBackupRetention()
		}
		if src.BaseBackupSchedule != "off" && (src.Connection == "" || src.PGData == "") {
			return fmt.Errorf("wal.sources %s: baseBackupSchedule needs connection and pgdata", src.Name)
		}
	}
	switch c.Restore.Flavor {
	case "":
		c.Restore.Flavor = FlavorK3s
	case FlavorK3s, FlavorEtcd:
	default:
		return fmt.Errorf("restore.flavor %q: want k3s or etcd", c.Restore.Flavor)
	}
	if c.Restore.K3sBinary == "" {
		c.Restore.K3sBinary = "/usr/local/bin/k3s"
	}
	if c.Restore.EtcdDataDir == "" {
		c.Restore.EtcdDataDir = filepath.Join(c.DataDir, "server", "db", "etcd")
	}
	if err := c.completeBuckets(); err != nil {
		return err
	}
	if err := c.completeDrill(); err != nil {
		return err
	}
	if err := c.checkSchedules(); err != nil {
		return err
	}
	if c.APIServer != "" {
		if _, _, err := net.SplitHostPort(c.APIServer); err != nil {
			return fmt.Errorf("apiServer %q: want HOST:PORT: %w", c.APIServer, err)
		}
	}
	if err := c.completeTargets(); err != nil {
		return err
	}
	if c.Restic.CacheDir == "" {
		c.Restic.CacheDir = filepath.Join(c.StateDir, "restic-cache")
	}
	return c.checkHostPaths()
}

// kernelDirs are the trees of a privileged, hostPID container that reach
// past its mounts: /proc/1/root is the node's root file system, /dev its
// disks. A path the agent backs up, restores into or writes must not lie
// in them, or a ConfigMap edit would reach every file of the node.
var kernelDirs = []string{"/proc", "/sys", "/dev"}

func (c *Config) checkHostPaths() error {
	check := func(key, p string) error {
		clean := filepath.Clean(p)
		for _, d := range kernelDirs {
			if clean == d || strings.HasPrefix(clean, d+"/") {
				return fmt.Errorf("%s %q is under %s: the agent runs privileged with the node's processes, and %s reaches past its mounts into the whole node; name the directory itself", key, p, d, d)
			}
		}
		return nil
	}
	paths := [][2]string{{"dataDir", c.DataDir}, {"stateDir", c.StateDir}, {"restic.cacheDir", c.Restic.CacheDir}, {"restore.etcdDataDir", c.Restore.EtcdDataDir}}
	for _, p := range c.Restic.Paths {
		paths = append(paths, [2]string{"restic.paths", p})
	}
	for node, ps := range c.Restic.Nodes {
		for _, p := range ps.Paths {
			paths = append(paths, [2]string{"restic.nodes." + node + ".paths", p})
		}
	}
	for _, src := range c.WAL.Sources {
		paths = append(paths, [2]string{"wal.sources " + src.Name + ": spool", src.Spool})
		if src.PGData != "" {
			paths = append(paths, [2]string{"wal.sources " + src.Name + ": pgdata", src.PGData})
		}
	}
	for _, p := range paths {
		if err := check(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// checkSchedules parses every cron expression.
func (c *Config) checkSchedules() error {
	check := func(what, spec string) error {
		if spec == "off" {
			return nil
		}
		if _, err := ParseSchedule(spec); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := check("etcd.schedule", c.Etcd.Schedule); err != nil {
		return err
	}
	if err := check("restic.schedule", c.Restic.Schedule); err != nil {
		return err
	}
	for _, src := range c.WAL.Sources {
		if err := check("wal.sources "+src.Name+": baseBackupSchedule", src.BaseBackupSchedule); err != nil {
			return err
		}
	}
	return nil
}

// ParseSchedule reads a cron expression the way the agent's scheduler does:
// five fields, or six with seconds first, or a descriptor such as @daily.
func ParseSchedule(spec string) (cron.Schedule, error) {
	p := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	s, err := p.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (want a cron expression such as \"0 */6 * * *\")", spec, err)
	}
	return s, nil
}

// TargetOff is the RPO target of a layer nobody watches.
const TargetOff = "off"

// completeTargets checks each RPO target and fills the defaults: twice
// the longest interval of the layer's schedule (a run may fail once
// before the target is missed), off when the schedule is; 5m for WAL.
// A target shorter than the schedule's interval would be missed before
// every run, and is refused.
func (c *Config) completeTargets() error {
	scheduled := func(key, schedKey, spec string, target *string) error {
		if spec == "off" {
			if *target == "" {
				*target = TargetOff
			}
			return checkTarget(key, *target)
		}
		sched, err := ParseSchedule(spec)
		if err != nil {
			return fmt.Errorf("%s: %w", schedKey, err)
		}
		every := Interval(sched)
		if *target == "" {
			*target = (2 * every).String()
			return nil
		}
		if err := checkTarget(key, *target); err != nil {
			return err
		}
		if d := Target(*target); d > 0 && d < every {
			return fmt.Errorf("%s %s is shorter than %s's interval (%s): it would be missed before every run; raise it or schedule runs more often", key, d, schedKey, every)
		}
		return nil
	}
	if err := scheduled("etcd.rpoTarget", "etcd.schedule", c.Etcd.Schedule, &c.Etcd.RPOTarget); err != nil {
		return err
	}
	if err := scheduled("restic.rpoTarget", "restic.schedule", c.Restic.Schedule, &c.Restic.RPOTarget); err != nil {
		return err
	}
	for i := range c.WAL.Sources {
		src := &c.WAL.Sources[i]
		if src.RPOTarget == "" {
			src.RPOTarget = DefaultWALRPOTarget.String()
		}
		if err := checkTarget("wal.sources "+src.Name+": rpoTarget", src.RPOTarget); err != nil {
			return err
		}
	}
	return nil
}

func checkTarget(key, v string) error {
	if v == TargetOff {
		return nil
	}
	if v == "false" {
		return fmt.Errorf("%s is false: write \"off\" in quotes (YAML reads a bare off as false)", key)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s %q: want a positive duration such as 12h or 30m, or off", key, v)
	}
	return nil
}

// Target is a completed rpoTarget as a duration; 0 when it is off.
func Target(v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// Interval is the longest gap between two runs of a schedule, over the
// runs of a year from a fixed day (so a schedule's default target does
// not depend on when the agent started). "0 */6 * * *" is 6h, "30 2 * * 1-5"
// is 3 days (Friday to Monday).
func Interval(s interface{ Next(time.Time) time.Time }) time.Duration {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := from.AddDate(1, 0, 0)
	var longest time.Duration
	prev := s.Next(from)
	for i := 0; i < 20000 && !prev.IsZero() && prev.Before(end); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if d := next.Sub(prev); d > longest {
			longest = d
		}
		prev = next
	}
	return longest
}

// CheckLoopback refuses an address (HOST:PORT) that other hosts can reach:
// the agent's gRPC and metrics serve the node's loopback, and the plugin
// comes in through the API server's port-forward. Only a loopback IP or
// localhost passes; an empty host is every interface.
func CheckLoopback(key, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", key, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q is not a loopback address: the agent serves only the node's loopback (the plugin comes in through the API server's port-forward); to serve %s anyway, start it with --allow-remote-listen", key, addr, host)
}
