package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/preflight"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	"github.com/kubectl-dr/kubectl-dr/agent/server"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func newEtcdCmd(out io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "etcd commands for a server node when no API server is left",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEtcdRestoreCmd(out))
	return cmd
}

type etcdRestoreOptions struct {
	configFile, storeURL, clusterID, keyFile string
	snapshot, file                           string
	latest, newHost, tokenFromStore, yes     bool
	noHash                                   bool
	dataDir, stateDir, flavor, k3sBinary     string
	stopCommand, startCommand                string
	memberName, peerURL                      string
	skipPreflight                            []string
	caFile                                   string
	allowUnsigned                            bool
}

func newEtcdRestoreCmd(out io.Writer) *cobra.Command {
	o := &etcdRestoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore --snapshot NAME|--latest|--file PATH (--config FILE | --store URL --cluster-id ID) [--yes]",
		Short: "Restore this server's etcd from a snapshot in the store, with no API server",
		Long: `Run on a server node (over SSH) when the cluster is gone: fetches the
snapshot from the store, checks its checksums, and restores this server alone,
recording each step in <state-dir>/restore/plans/ as the agent does:

  k3s:  stop k3s, [put the server token back], k3s server --cluster-reset
        --cluster-reset-restore-path=<verified file> (k3s moves server/db/etcd
        to etcd-old-<time>), start k3s, wait until etcd is healthy.
  etcd: stop the member, restore its data dir (the old one moved aside),
        start it, wait until it is healthy.

Stop k3s on the other servers first; after this server is back, move their
server/db/etcd aside and start them: they rejoin.

Store settings come from the agent config (--config) or from --store and the
environment (DR_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)
with --cluster-id. Encrypted snapshots need the snapshot key, which nodes do
not keep: --snapshot-key-file FILE, or --snapshot-key-file - to read it from
stdin (kubectl -n dr-system get secret dr-snapshot-key -o
jsonpath='{.data.snapshot\.key}' | base64 -d, or the copy kept outside the
cluster). It is read into memory and never written on the node.

--token-from-store puts the server token kept with the snapshot back in
server/token; --new-host also puts back server/cred/encryption-config.json
(without them a restored cluster cannot decrypt its bootstrap data or its
Secrets). A different file already there is moved aside, never deleted.

--file PATH restores from a file on this node instead of the store, with no
store needed: what ` + "`etcdctl snapshot save`" + ` wrote (its sha256 trailer is
checked), one of k3s's .zip snapshots (unzipped and checked), a copy of k3s's
state.db (SQLite's integrity check), or a member's member/snap/db with
--no-hash (every bucket and key walked, etcd's trailer added). A truncated
or damaged file is refused before anything stops.

With --yes, once the snapshot is fetched and verified and before anything
stops, the preflight checks it against this server: the server token (the
one kept with the snapshot with --new-host or --token-from-store) matches
its k3s bootstrap data, k3s here is not older than the snapshot's, the
encryption config decrypts its Secrets, the data dir has twice the
snapshot free. A failed check refuses (exit 1) with what to do;
--skip-preflight CHECK goes on anyway.

Without --yes the command prints what it would do and changes nothing.`,
		Example: `  dr-agent etcd restore --latest --store s3://backups/k3s --cluster-id UID --snapshot-key-file snapshot.key
  dr-agent etcd restore --snapshot nightly-server-1-1795285773 --config /etc/dr-agent/config.yaml --yes
  dr-agent etcd restore --latest --new-host --store s3://backups/k3s --cluster-id UID --snapshot-key-file - --yes < snapshot.key
  dr-agent etcd restore --file /var/lib/rancher/k3s/server/db/snapshots/etcd-snapshot-server-1-1795285773.zip --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.snapshot, "snapshot", "", "the snapshot's name (kubectl dr etcd snapshot ls)")
	f.BoolVar(&o.latest, "latest", false, "the newest snapshot of the cluster in the store")
	f.StringVar(&o.file, "file", "", "a snapshot file on this node instead of the store: an etcdctl snapshot, a k3s .zip, a state.db copy (SQLite), or a member's db with --no-hash")
	f.BoolVar(&o.noHash, "no-hash", false, "with --file: accept a file without etcd's sha256 trailer (a member's db) after checking its bbolt structure")
	f.StringVar(&o.configFile, "config", "", "agent configuration file (store, cluster id, data dir, restore settings)")
	f.StringVar(&o.storeURL, "store", "", "store URL, without --config (endpoint and credentials from the environment)")
	f.StringVar(&o.clusterID, "cluster-id", os.Getenv("DR_CLUSTER_ID"), "the cluster's id in the store (the kube-system namespace UID), without --config")
	f.StringVar(&o.keyFile, "snapshot-key-file", os.Getenv("DR_SNAPSHOT_KEY"), "the snapshot key (age identity) for encrypted snapshots and their bootstrap files; - reads it from stdin (default $DR_SNAPSHOT_KEY)")
	f.StringVar(&o.keyFile, "key-file", os.Getenv("DR_SNAPSHOT_KEY"), "")
	_ = f.MarkDeprecated("key-file", "use --snapshot-key-file")
	f.StringVar(&o.dataDir, "data-dir", "", "k3s data dir (default "+agentconfig.DefaultDataDir+")")
	f.StringVar(&o.stateDir, "state-dir", "", "the agent's state dir (default "+agentconfig.DefaultStateDir+")")
	f.StringVar(&o.flavor, "flavor", "", "k3s or etcd (default k3s)")
	f.StringVar(&o.k3sBinary, "k3s-binary", "", "k3s binary (default /usr/local/bin/k3s)")
	f.StringVar(&o.stopCommand, "stop-command", "", "command that stops k3s or etcd (default: systemctl stop k3s)")
	f.StringVar(&o.startCommand, "start-command", "", "command that starts k3s or etcd (default: systemctl start k3s)")
	f.StringVar(&o.memberName, "member-name", "", "etcd flavour: this member's name (default the node name)")
	f.StringVar(&o.peerURL, "peer-url", "", "etcd flavour: this member's peer URL")
	f.BoolVar(&o.tokenFromStore, "token-from-store", false, "put the server token kept with the snapshot back")
	f.BoolVar(&o.newHost, "new-host", false, "put the server token and the encryption config kept with the snapshot back")
	f.StringArrayVar(&o.skipPreflight, "skip-preflight", nil, "go on although this preflight check failed ("+strings.Join(preflight.Checks, ", ")+"; repeatable)")
	f.StringVar(&o.caFile, "ca-file", "", "the CA install made (ca.crt of Secret dr-agent-tls): the snapshot's record must be signed by a certificate it issued (default the agent config's tls.ca)")
	f.BoolVar(&o.allowUnsigned, "allow-unsigned", false, "accept a snapshot whose record carries no signature (taken before records were signed, or by an agent not yet enrolled); one whose signature does not hold is refused whatever this says")
	f.BoolVar(&o.yes, "yes", false, "restore; without it nothing is changed")
	return cmd
}

func (o *etcdRestoreOptions) config(cmd *cobra.Command) (*agentconfig.Config, error) {
	var cfg *agentconfig.Config
	var err error
	if o.configFile != "" {
		if o.storeURL != "" {
			return nil, errors.New("--config and --store: give one")
		}
		if cfg, err = agentconfig.Load(o.configFile); err != nil {
			return nil, err
		}
		if cmd.Flags().Changed("cluster-id") {
			cfg.ClusterID = o.clusterID
		}
	} else {
		if cfg, err = agentconfig.Local(agentconfig.Config{Store: objstore.Config{URL: o.storeURL}.FromEnv(), ClusterID: o.clusterID, DataDir: o.dataDir}); err != nil {
			return nil, err
		}
	}
	set := func(flag string, dst *string, v string) {
		if cmd.Flags().Changed(flag) {
			*dst = v
		}
	}
	set("data-dir", &cfg.DataDir, o.dataDir)
	set("state-dir", &cfg.StateDir, o.stateDir)
	set("flavor", &cfg.Restore.Flavor, o.flavor)
	set("k3s-binary", &cfg.Restore.K3sBinary, o.k3sBinary)
	if o.stopCommand != "" {
		cfg.Restore.StopCommand = strings.Fields(o.stopCommand)
	}
	if o.startCommand != "" {
		cfg.Restore.StartCommand = strings.Fields(o.startCommand)
	}
	if cmd.Flags().Changed("data-dir") && o.configFile != "" {
		// Paths the config derived from the data dir follow it.
		cfg.Restore.EtcdDataDir = ""
	}
	// Defaults for what the flags changed (the data dir, the flavour).
	return agentconfig.Local(*cfg)
}

func (o *etcdRestoreOptions) run(cmd *cobra.Command, out io.Writer) error {
	ctx := cmd.Context()
	if n := btoi(o.snapshot != "") + btoi(o.latest) + btoi(o.file != ""); n != 1 {
		return errors.New("name the snapshot: --snapshot NAME, --latest or --file PATH (one of them)")
	}
	if o.noHash && o.file == "" {
		return errors.New("--no-hash goes with --file (snapshots in the store were verified when they were taken)")
	}
	if o.file != "" && (o.newHost || o.tokenFromStore) {
		return errors.New("--new-host and --token-from-store take the files kept with a snapshot in the store: a --file has none (put server/token back by hand)")
	}
	if o.snapshot != "" {
		if err := dbsnap.ValidateName(o.snapshot); err != nil {
			return err
		}
	}
	for _, c := range o.skipPreflight {
		if !slices.Contains(preflight.Checks, c) {
			return fmt.Errorf("--skip-preflight %q: want one of %s", c, strings.Join(preflight.Checks, ", "))
		}
	}
	cfg, err := o.config(cmd)
	if err != nil {
		return err
	}
	k3s := cfg.Restore.Flavor == agentconfig.FlavorK3s
	if (o.newHost || o.tokenFromStore) && !k3s {
		return errors.New("--new-host and --token-from-store put k3s's files back: the etcd flavour has none")
	}
	if !k3s && o.peerURL == "" {
		return errors.New("the etcd flavour needs --peer-url (this member's peer URL, e.g. https://10.0.0.1:2380)")
	}
	if !k3s && (len(cfg.Restore.StopCommand) == 0 || len(cfg.Restore.StartCommand) == 0) {
		return errors.New("the etcd flavour needs --stop-command and --start-command (how etcd is stopped and started here)")
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("data dir %s: %w (give --data-dir)", cfg.DataDir, err)
	}
	var store objstore.Store
	var snap *dbsnap.Snapshot
	if o.file != "" {
		if snap, err = restoreplan.StageFile(ctx, o.file, o.noHash, cfg.StateDir); err != nil {
			return fmt.Errorf("%w; nothing was stopped", err)
		}
		fmt.Fprintf(out, "%s: %s, verified\n", o.file, snap.Imported.Kind)
	} else if snap, store, err = o.fromStore(cmd, cfg); err != nil {
		return err
	}
	return o.restore(cmd, out, cfg, store, snap)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fromStore finds the snapshot --snapshot or --latest names in the store.
func (o *etcdRestoreOptions) fromStore(cmd *cobra.Command, cfg *agentconfig.Config) (*dbsnap.Snapshot, objstore.Store, error) {
	ctx := cmd.Context()
	if cfg.Store.URL == "" {
		return nil, nil, errors.New("no store: give --config FILE, or --store s3://BUCKET/PREFIX (or file:///PATH) with --cluster-id")
	}
	if cfg.ClusterID == "" {
		return nil, nil, errors.New("no cluster id: give --cluster-id (the kube-system namespace UID; the store keeps each cluster under it: `kubectl dr status -o yaml` shows it, or list the store's top level)")
	}
	store, err := objstore.Open(cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	store = store.Sub(cfg.ClusterID)
	list, skipped, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots in %s: %w", store, err)
	}
	for _, sk := range skipped {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", sk)
	}
	if o.latest {
		dbsnap.SortNewestFirst(list)
		if len(list) == 0 {
			return nil, nil, fmt.Errorf("no etcd snapshot of cluster %s in %s: check --cluster-id and the store", cfg.ClusterID, store)
		}
		return o.verified(ctx, cfg, store, list[0])
	}
	snap, ok := dbsnap.Find(list, o.snapshot)
	if !ok {
		return nil, nil, fmt.Errorf("no etcd snapshot named %q in %s (%d snapshots there; --latest takes the newest)", o.snapshot, store, len(list))
	}
	return o.verified(ctx, cfg, store, snap)
}

// verified is snap as its signed record says, checked against --ca-file
// or the agent config's CA.
func (o *etcdRestoreOptions) verified(ctx context.Context, cfg *agentconfig.Config, store objstore.Store, snap *dbsnap.Snapshot) (*dbsnap.Snapshot, objstore.Store, error) {
	files := cfg.TLS
	if o.caFile != "" {
		files = mtls.Files{CA: o.caFile}
	}
	v, _, err := dbsnap.Verified(ctx, store, server.RecordPolicy(files, o.allowUnsigned), snap)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; nothing was changed", err)
	}
	return v, store, nil
}

// identity reads the snapshot key: --snapshot-key-file (- for stdin), else
// the private key an older config names in etcd.snapshotKeyFile; nil when
// neither. It stays in memory.
func (o *etcdRestoreOptions) identity(cmd *cobra.Command, cfg *agentconfig.Config) (age.Identity, error) {
	switch {
	case o.keyFile == "-":
		data, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		if err != nil {
			return nil, fmt.Errorf("read the snapshot key from stdin: %w", err)
		}
		return dbsnap.ParseIdentity(bytes.NewReader(data), "from stdin")
	case o.keyFile != "":
		return dbsnap.LoadIdentity(o.keyFile)
	case cfg.Etcd.SnapshotKeyFile != "":
		return dbsnap.LoadIdentity(cfg.Etcd.SnapshotKeyFile)
	}
	return nil, nil
}

// restore shows the plan for snap and, with --yes, runs it.
func (o *etcdRestoreOptions) restore(cmd *cobra.Command, out io.Writer, cfg *agentconfig.Config, store objstore.Store, snap *dbsnap.Snapshot) error {
	ctx := cmd.Context()
	var err error
	k3s := cfg.Restore.Flavor == agentconfig.FlavorK3s
	// Unique even for two restores in one second: a plan id that already
	// ran is refused.
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	planID := fmt.Sprintf("node-restore-%d-%x", time.Now().Unix(), rnd)
	req := restoreplan.Request{
		ID: planID, Flavor: cfg.Restore.Flavor, Single: true,
		Resolve: func(context.Context) (*dbsnap.Snapshot, error) { return snap, nil },
	}
	sqlite := snap.DatastoreKind() == dbsnap.DatastoreSQLite
	if sqlite && !k3s {
		return fmt.Errorf("snapshot %s is of k3s's SQLite datastore: restore it on a k3s server (restore.flavor k3s)", snap.Name)
	}
	switch {
	case sqlite:
		req.Role = restoreplan.RoleSQLite
	case k3s:
		req.Role = restoreplan.RoleReset
	default:
		name := o.memberName
		if name == "" {
			name = cfg.NodeName
		}
		req.MemberName, req.PeerURLs = name, []string{o.peerURL}
		req.InitialCluster, req.InitialClusterToken = name+"="+o.peerURL, planID
	}
	switch {
	case o.newHost:
		req.Bootstrap = restoreplan.BootstrapAll
	case o.tokenFromStore:
		req.Bootstrap = restoreplan.BootstrapToken
	}
	if store != nil && (snap.Encrypted() || req.Bootstrap != restoreplan.BootstrapNone) {
		if req.Identity, err = o.identity(cmd, cfg); err != nil {
			return err
		}
		if req.Identity == nil {
			return fmt.Errorf("%w (snapshot %s is encrypted); nothing was stopped", restoreplan.ErrNoKey, snap.Name)
		}
	}
	preview, err := restoreplan.Build(cfg, req)
	if err != nil {
		return err
	}
	if err := restoreplan.CheckFree(cfg, planID); err != nil {
		return err
	}
	fmt.Fprintf(out, "snapshot %s: node %s, taken %s, revision %d, %d bytes", snap.Name, snap.Node, snap.Created.Format(time.RFC3339), snap.Revision, snap.Size)
	if !snap.Encrypted() {
		fmt.Fprint(out, ", not encrypted")
	}
	fmt.Fprintf(out, "\nrestore on %s (%s): %s\n", cfg.NodeName, cfg.Restore.Flavor, strings.Join(preview.StepNames(), " → "))
	if !o.yes {
		fmt.Fprintln(out, "Nothing was changed: run again with --yes to restore.")
		return nil
	}

	if sqlite {
		fmt.Fprintf(out, "fetching %s, verifying its checksums and putting a checked copy beside server/db/state.db\n", snap.Name)
	} else if k3s {
		fmt.Fprintf(out, "fetching %s and verifying its checksums\n", snap.Name)
	} else {
		fmt.Fprintf(out, "fetching %s, verifying its checksums and building the member's new data dir beside %s\n", snap.Name, cfg.Restore.EtcdDataDir)
	}
	prepared, err := restoreplan.Prepare(ctx, cfg, store, req)
	if err != nil {
		return fmt.Errorf("%w; nothing was stopped", err)
	}
	p := prepared.Plan
	if prepared.Reused {
		fmt.Fprintf(out, "used the verified copy %s\n", p.SnapshotPath)
	}
	plans := restoreplan.PlansIn(cfg.StateDir)
	if err := o.preflight(ctx, out, cfg, store, snap, p, req.Bootstrap); err != nil {
		if derr := plans.Discard(p.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("discard the prepared plan %s: %w", p.ID, derr))
		}
		return err
	}
	start := time.Now()
	r := restoreplan.NewRunner(cfg, func(_ *restoreplan.Plan, s restoreplan.Step) {
		line := fmt.Sprintf("%7s  %s %s", time.Since(start).Round(100*time.Millisecond), s.Name, s.State)
		if s.Error != "" {
			line += ": " + s.Error
		}
		fmt.Fprintln(out, line)
	})
	if err := r.Run(ctx, p); err != nil {
		latest, _ := plans.Load(p.ID)
		hint := ""
		if latest != nil {
			hint = "\n" + latest.Hint()
		}
		return fmt.Errorf("restore %s: %w%s", p.ID, err, hint)
	}
	if sqlite {
		fmt.Fprintf(out, "k3s on %s serves the restored state.db (from %s) after %s; the previous files are at %s.aside-%s\n", cfg.NodeName, snap.Name, time.Since(start).Round(100*time.Millisecond), filepath.Join(cfg.DataDir, "server", "db", "state.db"), p.ID)
		return nil
	}
	fmt.Fprintf(out, "etcd on %s is healthy, restored from %s, after %s\n", cfg.NodeName, snap.Name, time.Since(start).Round(100*time.Millisecond))
	if k3s {
		fmt.Fprintln(out, "On every other server: stop k3s, move server/db/etcd aside, start k3s (it rejoins this one).")
	}
	return nil
}

// preflight checks the verified snapshot of prepared plan p against this
// server (agent/internal/preflight), prints a row per check and fails,
// before anything stops, when a check not skipped failed.
func (o *etcdRestoreOptions) preflight(ctx context.Context, out io.Writer, cfg *agentconfig.Config, store objstore.Store, snap *dbsnap.Snapshot, p *restoreplan.Plan, boot restoreplan.Bootstrap) error {
	path := p.SnapshotPath
	if path == "" && p.Staging != "" {
		// The etcd flavour built the member's data dir from the store
		// without a copy: its db holds the same keys.
		path = filepath.Join(p.Staging, "member", "snap", "db")
	}
	in := preflight.Input{
		Snapshot: snap, Path: path, NewHost: boot != restoreplan.BootstrapNone, TokenOnly: boot == restoreplan.BootstrapToken,
		DataDir: cfg.DataDir, Flavor: cfg.Restore.Flavor,
		K3sBinary: cfg.Restore.K3sBinary, K3sPrefix: restoreplan.NewK3sReset(cfg.Restore.K3sBinary, cfg.DataDir).Prefix,
	}
	if in.NewHost {
		id, err := dbsnap.LoadIdentity(cfg.Etcd.SnapshotKeyFile)
		if err == nil {
			in.Escrow, in.EscrowErr = dbsnap.FetchBootstrap(ctx, store, snap, id)
		} else {
			in.EscrowErr = err
		}
	}
	rows := preflight.Run(ctx, in)
	fmt.Fprintf(out, "preflight of %s on %s:\n", snap.Name, cfg.NodeName)
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATE\tDETAIL")
	for _, r := range rows {
		state := r.State
		if state == preflight.Failed && slices.Contains(o.skipPreflight, r.Check) {
			state = "failed (skipped)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Check, state, r.Detail)
	}
	tw.Flush()
	failed := preflight.Failures(rows, o.skipPreflight)
	if len(failed) == 0 {
		return nil
	}
	var lines []string
	for _, r := range failed {
		lines = append(lines, fmt.Sprintf("%s: %s\n    fix: %s", r.Check, r.Detail, r.Fix))
	}
	return fmt.Errorf("preflight failed, nothing was stopped:\n  %s\n(--skip-preflight CHECK restores anyway, at your risk)", strings.Join(lines, "\n  "))
}
