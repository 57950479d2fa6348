package install

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// Secrets install creates besides the ones cmdutil names.
const (
	AgentTLSSecret = "dr-agent-tls"
	ResticSecret   = "dr-restic"
	// RecipientSecret is what the agents mount of the snapshot key: its
	// public recipient (age1...) under RecipientKey. The private identity
	// stays in Secret dr-snapshot-key, which only the plugin reads.
	RecipientSecret = "dr-snapshot-recipient"
	RecipientKey    = "snapshot.recipient"
)

// DefaultImage is the agent image of this build's version: the plugin and
// its agents are released together, and a moving tag such as latest would
// let them drift apart. Image tags cannot hold "+": it becomes "-".
func DefaultImage() string {
	return "ghcr.io/kubectl-dr/dr-agent:" + strings.ReplaceAll(buildinfo.Get().Version, "+", "-")
}

// Options for `kubectl dr install`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Image              string
	DataDir            string
	StateDir           string
	Port               int
	Schedule           string
	FilesSchedule      string
	SnapshotKeyFile    string
	ResticPasswordFile string
	DryRun             bool
	Output             string
	Wait               bool
	Timeout            time.Duration
	Force              bool
	Set                []string
	BucketSources      []string
	// The host keys (agentconfig.HostKeys): only install sets them.
	RestoreFlavor string
	StopCommand   string
	StartCommand  string
	K3sBinary     string
	EtcdDataDir   string
	APIServer     string
	// Scoped node credentials (nodestore.go) and Object Lock.
	StoreNodeAccessKeyFile string
	StoreNodeSecretKeyFile string
	// MinIO admin credentials to make the node user with; used once,
	// never kept (nodeuser.go).
	StoreAdminAccessKeyFile string
	StoreAdminSecretKeyFile string
	ObjectLockDays          int
	ObjectLockMode          string
	CreateBucket            bool

	// Resolved by Complete.
	store     objstore.Config
	changes   []Change
	buckets   []*bucketSource
	fromFlags bool
	changed   func(flag string) bool
}

// NewCmdInstall returns the install command.
func NewCmdInstall(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f, Wait: true}
	cmd := &cobra.Command{
		Use:   "install --store URL [--s3-endpoint URL --access-key-file F --secret-key-file F]",
		Short: "Install the dr-agent DaemonSet, its Secrets and configuration into the cluster",
		Long: `Install creates the agents' mTLS certificates and the Secrets for the store,
the restic password and the snapshot key, server-side applies the manifests
(the same files as manifests/ in the source), waits for the agent on every
node and has each agent write to the store.

The store is checked from here first: when it does not accept writes,
nothing is applied (unless --force). Re-running is safe: certificates and
keys are kept, only changed flags change objects. Generated keys are kept
in Secrets; keep a copy outside the cluster, as install reminds you.

--dry-run -o yaml prints every object, Secrets included, and applies nothing.`,
		Example: `  # MinIO as the store
  kubectl dr install --store s3://backups/k3s --s3-endpoint https://minio.example:9000 \
    --access-key-file access.key --secret-key-file secret.key

  # MinIO, install making the nodes' put/get-only user with admin credentials (used once, not kept)
  kubectl dr install --store s3://backups/k3s --s3-endpoint https://minio.example:9000 \
    --access-key-file access.key --secret-key-file secret.key \
    --store-admin-access-key-file admin.key --store-admin-secret-key-file admin.secret

  # with configuration keys (the same as kubectl dr config set)
  kubectl dr install --store s3://backups/k3s --s3-endpoint https://minio.example:9000 \
    --access-key-file access.key --secret-key-file secret.key \
    --set restic.schedule="30 2 * * *" --set 'restic.paths=[/srv/data]'

  # what would be applied
  kubectl dr install --store s3://backups/k3s --s3-endpoint https://minio.example:9000 \
    --access-key-file access.key --secret-key-file secret.key --dry-run -o yaml`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	fl := cmd.Flags()
	f.BindStoreFlags(fl)
	fl.StringVar(&o.Image, "image", DefaultImage(), "the dr-agent image")
	fl.StringArrayVar(&o.BucketSources, "bucket-source", nil, "an application bucket to back up: name=N,url=s3://BUCKET,endpoint=URL,access-key-file=F,secret-key-file=F[,prefix=P,mode=continuous|CRON,interval=30s,retention-days=90,path-style=true,region=R,ca-file=F,concurrency=8,rpo-target=D] (repeatable; credentials go into Secret "+BucketSecretPrefix+"N)")
	fl.StringVar(&o.DataDir, "data-dir", agentconfig.DefaultDataDir, "k3s's --data-dir on the nodes")
	fl.StringVar(&o.StateDir, "state-dir", agentconfig.DefaultStateDir, "the agent's own directory on the nodes")
	fl.IntVar(&o.Port, "agent-port", 9650, "the agent's gRPC port on each node's loopback; its health endpoint is the next port")
	fl.StringVar(&o.Schedule, "schedule", "", `cron schedule of etcd snapshots (default "0 */6 * * *", as k3s; "off" turns them off)`)
	fl.StringVar(&o.FilesSchedule, "files-schedule", "", `cron schedule of file backups (default "off")`)
	fl.StringVar(&o.SnapshotKeyFile, "snapshot-key-file", "", "age identity to encrypt etcd snapshots to (default: generate one on first install)")
	fl.StringVar(&o.ResticPasswordFile, "restic-password-file", "", "restic repository password (default: generate one on first install)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print what would be applied, apply nothing")
	fl.StringVarP(&o.Output, "output", "o", "", "with --dry-run: yaml or json")
	fl.BoolVar(&o.Wait, "wait", o.Wait, "wait for every node's agent and check it can write to the store")
	fl.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for the agents")
	fl.BoolVar(&o.Force, "force", false, "apply even when the store check fails (the agents are then reported not ready)")
	fl.StringArrayVar(&o.Set, "set", nil, "set a key of the agent configuration, as kubectl dr config set does (KEY=VALUE, VALUE is YAML; repeatable)")
	fl.StringVar(&o.RestoreFlavor, "restore-flavor", "", `how the nodes restore etcd: k3s (k3s's cluster reset; the default) or etcd (a kubeadm-style member) (restore.flavor)`)
	fl.StringVar(&o.StopCommand, "stop-command", "", `command that stops k3s or etcd for a restore, run as root on the node: words, or a YAML list '[sh, -c, "..."]' (restore.stopCommand; default systemctl stop k3s; "" the default again)`)
	fl.StringVar(&o.StartCommand, "start-command", "", `command that starts k3s or etcd after a restore, as --stop-command (restore.startCommand; default systemctl start k3s)`)
	fl.StringVar(&o.K3sBinary, "k3s-binary", "", "k3s binary on the nodes, run for a cluster reset (restore.k3sBinary; default /usr/local/bin/k3s)")
	fl.StringVar(&o.APIServer, "api-server", "", `HOST:PORT where the agents' pods reach the API server, when a host-network pod cannot reach its Service (no kube-proxy) (apiServer; "" the in-cluster Service again)`)
	fl.StringVar(&o.StoreNodeAccessKeyFile, "store-node-access-key-file", "", "access key of credentials made for the nodes (put and get, no delete; any store: docs/security.md has the IAM policy)")
	fl.StringVar(&o.StoreNodeSecretKeyFile, "store-node-secret-key-file", "", "secret key of the nodes' credentials, with --store-node-access-key-file")
	fl.StringVar(&o.StoreAdminAccessKeyFile, "store-admin-access-key-file", "", "access key of MinIO admin credentials: install makes the nodes' put/get-only user "+NodeUserPrefix+"CLUSTER-ID and its policy with them (used for this only, never kept)")
	fl.StringVar(&o.StoreAdminSecretKeyFile, "store-admin-secret-key-file", "", "secret key of the MinIO admin credentials, with --store-admin-access-key-file")
	fl.IntVar(&o.ObjectLockDays, "object-lock-days", 0, "set the bucket's default Object Lock retention: every new object is kept this many days (the bucket must have object lock; see --create-bucket)")
	fl.StringVar(&o.ObjectLockMode, "object-lock-mode", objstore.LockGovernance, "Object Lock mode with --object-lock-days: governance (lifted with s3:BypassGovernanceRetention) or compliance (by nobody)")
	fl.BoolVar(&o.CreateBucket, "create-bucket", false, "with --object-lock-days: create the store's bucket with object lock and versioning when it does not exist")
	fl.StringVar(&o.EtcdDataDir, "etcd-data-dir", "", "the etcd member's data dir for --restore-flavor etcd (restore.etcdDataDir; default <data-dir>/server/db/etcd)")
	return cmd
}

// Complete resolves the store from flags, environment, or the Secret of an
// earlier install.
func (o *Options) Complete(cmd *cobra.Command, _ []string) error {
	o.store = o.f.StoreConfig()
	o.fromFlags = o.store.URL != ""
	o.changed = cmd.Flags().Changed
	for _, a := range o.Set {
		c, err := ParseChange(a)
		if err != nil {
			return err
		}
		if c.Key == "buckets" || strings.HasPrefix(c.Key, "buckets.") {
			if len(o.BucketSources) > 0 {
				return cmdutil.UsageError("--set %s and --bucket-source both set bucket sources: use one", c.Key)
			}
		}
		o.changes = append(o.changes, c)
	}
	seen := map[string]bool{}
	for _, spec := range o.BucketSources {
		b, err := parseBucketSource(spec)
		if err != nil {
			return err
		}
		if seen[b.source.Name] {
			return cmdutil.UsageError("--bucket-source %s given twice", b.source.Name)
		}
		seen[b.source.Name] = true
		o.buckets = append(o.buckets, b)
	}
	return nil
}

// Validate checks flags before the cluster is asked anything.
func (o *Options) Validate() error {
	switch o.Output {
	case "", "yaml", "json":
	default:
		return cmdutil.UsageError("--output %q: want yaml or json", o.Output)
	}
	if o.Output != "" && !o.DryRun {
		return cmdutil.UsageError("--output goes with --dry-run")
	}
	if o.Port < 1 || o.Port > 65534 {
		return cmdutil.UsageError("--agent-port %d: want 1-65534", o.Port)
	}
	for flag, p := range map[string]string{"--data-dir": o.DataDir, "--state-dir": o.StateDir} {
		if !strings.HasPrefix(p, "/") {
			return cmdutil.UsageError("%s %q must be an absolute path", flag, p)
		}
	}
	if o.Image == "" {
		return cmdutil.UsageError("--image is empty")
	}
	switch o.RestoreFlavor {
	case "", agentconfig.FlavorK3s, agentconfig.FlavorEtcd:
	default:
		return cmdutil.UsageError("--restore-flavor %q: want k3s or etcd", o.RestoreFlavor)
	}
	for flag, p := range map[string]string{"--k3s-binary": o.K3sBinary, "--etcd-data-dir": o.EtcdDataDir} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return cmdutil.UsageError("%s %q must be an absolute path", flag, p)
		}
	}
	for flag, c := range map[string]string{"--stop-command": o.StopCommand, "--start-command": o.StartCommand} {
		if _, err := parseCommand(c); err != nil {
			return cmdutil.UsageError("%s: %w", flag, err)
		}
	}
	return o.validateNodeStore()
}

// parseCommand reads a command flag: a YAML list of words, or words
// separated by spaces.
func parseCommand(s string) ([]string, error) {
	if !strings.HasPrefix(strings.TrimSpace(s), "[") {
		return strings.Fields(s), nil
	}
	var argv []string
	if err := yaml.UnmarshalStrict([]byte(s), &argv); err != nil {
		return nil, fmt.Errorf("%q: want words, or a YAML list of strings: %w", s, err)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%q names no program", s)
	}
	return argv, nil
}

// Run installs, or prints what it would install.
func (o *Options) Run(ctx context.Context) error {
	cs, err := o.f.Clientset()
	if err != nil {
		return err
	}
	ns := o.f.AgentNamespace()
	if !o.DryRun {
		if err := preflight(ctx, cs, ns); err != nil {
			return err
		}
	}
	clusterID, err := o.f.ClusterID(ctx)
	if err != nil {
		return err
	}
	existing, err := readExisting(ctx, cs, ns)
	if err != nil {
		return err
	}
	if !o.fromFlags {
		if existing.secrets[cmdutil.StoreSecret] == nil {
			return cmdutil.UsageError("--store is required: s3://BUCKET/PREFIX (with --s3-endpoint, --access-key-file, --secret-key-file) or file:///PATH")
		}
		if o.store, err = o.f.StoreFromSecret(ctx); err != nil {
			return err
		}
	}
	if err := loadCredentials(&o.store); err != nil {
		return err
	}
	storeSecret := storeSecretData(o.store)
	for _, b := range o.buckets {
		if err := b.load(); err != nil {
			return err
		}
	}

	if err := o.objectLock(ctx); err != nil {
		return err
	}
	if !o.DryRun {
		if err := o.checkStore(ctx, clusterID); err != nil {
			return err
		}
		if err := o.checkBuckets(ctx); err != nil {
			return err
		}
	}
	nodes, err := o.nodeStore(ctx, clusterID, existing)
	if err != nil {
		return err
	}
	if nodes, err = o.checkNodeStore(ctx, clusterID, nodes); err != nil {
		return err
	}

	tree := existing.config
	o.keepInstalled(tree)
	if tree == nil {
		if tree, err = EmbeddedConfig(); err != nil {
			return err
		}
	}
	secrets, generated, err := o.secrets(existing, storeSecret)
	if err != nil {
		return err
	}
	secrets = append(secrets, secret(NodeStoreSecret, nodeSecretData(o.store, nodes)))
	o.configure(tree, clusterID, storeSecret)
	if nodes.scoped {
		child(tree, "store")["scoped"] = true
	}
	for _, c := range o.changes {
		if err := c.Apply(tree); err != nil {
			return cmdutil.UsageError("--set %w", err)
		}
	}
	for _, b := range o.buckets {
		b.configure(tree)
		secrets = append(secrets, b.secret())
	}
	// The host keys become what the agents accept (their digest goes into
	// the DaemonSet): say which ones, as they run as root on every node.
	if restore, ok := tree["restore"].(map[string]any); ok && len(restore) > 0 {
		data, err := yaml.Marshal(restore)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "host keys the agents run as root (restore.*):\n  %s\n", strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n  "))
	}
	objs, err := Render(Settings{
		Namespace: ns, Image: o.Image, DataDir: o.DataDir, StateDir: o.StateDir, Port: o.Port,
		Config: tree, Secrets: secrets,
	})
	if err != nil {
		return fmt.Errorf("the agent configuration: %w", err)
	}
	if o.DryRun {
		return o.print(objs)
	}

	a, err := newApplier(o.f)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		result, err := a.apply(ctx, obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "%s/%s %s\n", strings.ToLower(obj.GetKind()), obj.GetName(), result)
	}
	for _, obj := range legacyObjects() {
		obj.SetNamespace(ns)
		what := strings.ToLower(obj.GetKind()) + "/" + obj.GetName()
		if gone, err := a.delete(ctx, obj); err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %s of an earlier install grants the agent more than it uses and was not removed: %v\n", what, err)
		} else if gone {
			fmt.Fprintf(o.ErrOut, "%s deleted (an earlier install's; the agent does not use it)\n", what)
		}
	}
	for _, g := range generated {
		fmt.Fprintln(o.ErrOut, g)
	}
	if !o.Wait {
		fmt.Fprintf(o.ErrOut, "Not waiting for the agents (--wait=false); `kubectl dr status` shows them.\n")
		return nil
	}
	if err := waitDaemonSet(ctx, cs, ns, DaemonSetName, o.Timeout, o.ErrOut); err != nil {
		return err
	}
	return checkAgents(ctx, o.f, o.ErrOut)
}

// checkStore writes to the store from here before anything is applied.
// A file:// store is on the nodes; the agents check it.
func (o *Options) checkStore(ctx context.Context, clusterID string) error {
	if strings.HasPrefix(o.store.URL, "file://") {
		return nil
	}
	store, err := objstore.Open(o.store)
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = store.Sub(clusterID).Check(cctx)
		cancel()
	}
	if err == nil {
		fmt.Fprintf(o.ErrOut, "store %s: writable\n", store)
		return nil
	}
	if o.Force {
		fmt.Fprintf(o.ErrOut, "warning: %v; installing anyway (--force): the agents will not be able to back up until the store works\n", err)
		return nil
	}
	hint := ""
	if strings.Contains(o.store.Endpoint, ".svc") {
		hint = "; an in-cluster endpoint (.svc) cannot be reached from here: pass --force and the agents check it after install"
	}
	return fmt.Errorf("%w\nnothing was applied: fix --store, --s3-endpoint, --s3-ca or the credentials (or pass --force to install anyway%s)", err, hint)
}

// checkBuckets lists each --bucket-source from here before anything is
// applied, as checkStore does for the store.
func (o *Options) checkBuckets(ctx context.Context) error {
	for _, b := range o.buckets {
		err := b.check(ctx)
		if err == nil {
			fmt.Fprintf(o.ErrOut, "bucket source %s: %s readable\n", b.source.Name, b.source.Bucket.URL)
			continue
		}
		if o.Force {
			fmt.Fprintf(o.ErrOut, "warning: %v; installing anyway (--force): its passes fail until the bucket answers\n", err)
			continue
		}
		return fmt.Errorf("%w\nnothing was applied: fix --bucket-source %s (url, endpoint, credentials), or pass --force to install anyway", err, b.source.Name)
	}
	return nil
}

// keepInstalled keeps the directories and port of an earlier install
// where no flag names new ones: a re-run without them changes nothing.
func (o *Options) keepInstalled(tree map[string]any) {
	if tree == nil || o.changed == nil {
		return
	}
	if v, ok := tree["dataDir"].(string); ok && v != "" && !o.changed("data-dir") {
		o.DataDir = v
	}
	if v, ok := tree["stateDir"].(string); ok && v != "" && !o.changed("state-dir") {
		o.StateDir = v
	}
	if v, ok := tree["listen"].(string); ok && !o.changed("agent-port") {
		if _, p, ok := strings.Cut(v, ":"); ok {
			if port, err := strconv.Atoi(p); err == nil {
				o.Port = port
			}
		}
	}
}

// configure sets what install owns in the agent config tree.
func (o *Options) configure(tree map[string]any, clusterID string, storeData map[string][]byte) {
	tree["clusterID"] = clusterID
	tree["dataDir"] = o.DataDir
	tree["stateDir"] = o.StateDir
	tree["listen"] = fmt.Sprintf("127.0.0.1:%d", o.Port)
	tree["metricsAddress"] = fmt.Sprintf("127.0.0.1:%d", o.Port+1)
	store := map[string]any{"url": o.store.URL}
	if o.store.Endpoint != "" {
		store["endpoint"] = o.store.Endpoint
	}
	if o.store.Region != "" {
		store["region"] = o.store.Region
	}
	if o.store.PathStyle {
		store["pathStyle"] = true
	}
	if len(storeData["ca.crt"]) > 0 {
		store["caFile"] = storeMount + "/ca.crt"
	}
	if len(storeData["accessKey"]) > 0 {
		store["accessKeyFile"] = storeMount + "/accessKey"
		store["secretKeyFile"] = storeMount + "/secretKey"
	}
	tree["store"] = store
	etcd := child(tree, "etcd")
	// The agents get only the recipient; an older install's private key
	// file goes from their config (the DaemonSet no longer mounts it).
	delete(etcd, "snapshotKeyFile")
	etcd["snapshotRecipientFile"] = recipientMount + "/" + RecipientKey
	if o.Schedule != "" {
		etcd["schedule"] = o.Schedule
	}
	if o.FilesSchedule != "" {
		child(tree, "restic")["schedule"] = o.FilesSchedule
	}
	o.configureHost(tree)
}

// configureHost sets the host keys from their flags. A flag not given
// keeps what an earlier install wrote; given empty, it removes the key
// (the agent's default applies).
func (o *Options) configureHost(tree map[string]any) {
	restore := child(tree, "restore")
	for _, k := range []struct{ flag, key, value string }{
		{"restore-flavor", "flavor", o.RestoreFlavor},
		{"stop-command", "stopCommand", o.StopCommand},
		{"start-command", "startCommand", o.StartCommand},
		{"k3s-binary", "k3sBinary", o.K3sBinary},
		{"etcd-data-dir", "etcdDataDir", o.EtcdDataDir},
	} {
		if o.changed == nil || !o.changed(k.flag) {
			continue
		}
		switch {
		case k.value == "":
			delete(restore, k.key)
		case k.key == "stopCommand" || k.key == "startCommand":
			argv, _ := parseCommand(k.value) // Validate parsed it
			words := make([]any, len(argv))
			for i, w := range argv {
				words[i] = w
			}
			restore[k.key] = words
		default:
			restore[k.key] = k.value
		}
	}
	if len(restore) == 0 {
		delete(tree, "restore")
	}
	// The agent sends its service account's token there.
	if o.changed != nil && o.changed("api-server") {
		if o.APIServer == "" {
			delete(tree, "apiServer")
		} else {
			tree["apiServer"] = o.APIServer
		}
	}
}

func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// loadCredentials reads the key files into the config; environment
// variables were read by FromEnv.
func loadCredentials(c *objstore.Config) error {
	read := func(file string, v *string, what string) error {
		if file == "" {
			return nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return cmdutil.UsageError("read the %s: %w", what, err)
		}
		*v = strings.TrimSpace(string(data))
		return nil
	}
	if err := read(c.AccessKeyFile, &c.AccessKey, "access key"); err != nil {
		return err
	}
	if err := read(c.SecretKeyFile, &c.SecretKey, "secret key"); err != nil {
		return err
	}
	c.AccessKeyFile, c.SecretKeyFile = "", ""
	if c.CAFile != "" {
		data, err := os.ReadFile(c.CAFile)
		if err != nil {
			return cmdutil.UsageError("read --s3-ca: %w", err)
		}
		c.CAPEM, c.CAFile = data, ""
	}
	if strings.HasPrefix(c.URL, "s3://") && (c.AccessKey == "" || c.SecretKey == "") {
		return cmdutil.UsageError("the store %s needs credentials: --access-key-file and --secret-key-file (or %s and %s)", c.URL, objstore.EnvAccessKey, objstore.EnvSecretKey)
	}
	if _, err := objstore.Open(*c); err != nil {
		return cmdutil.UsageError("%w", err)
	}
	return nil
}

// storeSecretData is the dr-store Secret: what the plugin reads to reach
// the store directly, and the files the agents read.
func storeSecretData(c objstore.Config) map[string][]byte {
	d := map[string][]byte{"url": []byte(c.URL)}
	put := func(k, v string) {
		if v != "" {
			d[k] = []byte(v)
		}
	}
	put("endpoint", c.Endpoint)
	put("region", c.Region)
	if c.PathStyle {
		put("pathStyle", "true")
	}
	put("accessKey", c.AccessKey)
	put("secretKey", c.SecretKey)
	if len(c.CAPEM) > 0 {
		d["ca.crt"] = c.CAPEM
	}
	return d
}

// secrets returns the Secrets to apply: certificates and keys of an earlier
// install are kept; what is generated now is announced.
func (o *Options) secrets(ex *existingState, storeData map[string][]byte) ([]*unstructured.Unstructured, []string, error) {
	var generated []string
	caData, agentTLS, clientTLS, fresh, err := certificates(ex.secrets[agentclient.AgentCASecret], ex.secrets[AgentTLSSecret], ex.secrets[cmdutil.ClientTLSSecret])
	if err != nil {
		return nil, nil, err
	}
	if fresh {
		generated = append(generated, "Generated the agents' CA (Secret "+agentclient.AgentCASecret+", never mounted on a node) and certificates (Secrets "+AgentTLSSecret+" and "+cmdutil.ClientTLSSecret+"); each agent is enrolled with a certificate for its node once it runs.")
	}
	key, err := o.snapshotKey(ex.secrets[cmdutil.SnapshotKeySecret])
	if err != nil {
		return nil, nil, err
	}
	id, err := dbsnap.ParseIdentity(bytes.NewReader(key), "in Secret "+cmdutil.SnapshotKeySecret)
	if err != nil {
		return nil, nil, err
	}
	if ex.secrets[cmdutil.SnapshotKeySecret] == nil && o.SnapshotKeyFile == "" {
		generated = append(generated, fmt.Sprintf("Generated the snapshot key. Keep a copy outside the cluster; without it no encrypted snapshot can be restored:\n  kubectl -n %s get secret %s -o jsonpath='{.data.snapshot\\.key}' | base64 -d > dr-snapshot.key",
			o.f.AgentNamespace(), cmdutil.SnapshotKeySecret))
	}
	password, err := o.resticPassword(ex.secrets[ResticSecret])
	if err != nil {
		return nil, nil, err
	}
	if ex.secrets[ResticSecret] == nil && o.ResticPasswordFile == "" {
		generated = append(generated, fmt.Sprintf("Generated the restic password. Keep a copy outside the cluster; without it no file backup can be restored:\n  kubectl -n %s get secret %s -o jsonpath='{.data.password}' | base64 -d > dr-restic.password",
			o.f.AgentNamespace(), ResticSecret))
	}
	return []*unstructured.Unstructured{
		secret(agentclient.AgentCASecret, caData),
		secret(AgentTLSSecret, agentTLS),
		secret(cmdutil.ClientTLSSecret, clientTLS),
		secret(cmdutil.StoreSecret, storeData),
		secret(cmdutil.SnapshotKeySecret, map[string][]byte{cmdutil.SnapshotKeyKey: key}),
		secret(RecipientSecret, map[string][]byte{RecipientKey: []byte(id.Recipient().String() + "\n")}),
		secret(ResticSecret, map[string][]byte{"password": password}),
	}, generated, nil
}

func (o *Options) snapshotKey(old map[string][]byte) ([]byte, error) {
	if o.SnapshotKeyFile != "" {
		data, err := os.ReadFile(o.SnapshotKeyFile)
		if err != nil {
			return nil, cmdutil.UsageError("read --snapshot-key-file: %w", err)
		}
		if _, err := age.ParseIdentities(strings.NewReader(string(data))); err != nil {
			return nil, cmdutil.UsageError("--snapshot-key-file %s: not an age identity (AGE-SECRET-KEY-1...): %w", o.SnapshotKeyFile, err)
		}
		return data, nil
	}
	if k := old[cmdutil.SnapshotKeyKey]; len(k) > 0 {
		return k, nil
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return []byte(id.String() + "\n"), nil
}

func (o *Options) resticPassword(old map[string][]byte) ([]byte, error) {
	if o.ResticPasswordFile != "" {
		data, err := os.ReadFile(o.ResticPasswordFile)
		if err != nil {
			return nil, cmdutil.UsageError("read --restic-password-file: %w", err)
		}
		if strings.TrimSpace(string(data)) == "" {
			return nil, cmdutil.UsageError("--restic-password-file %s is empty", o.ResticPasswordFile)
		}
		return data, nil
	}
	if p := old["password"]; len(p) > 0 {
		return p, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
}

func secret(name string, data map[string][]byte) *unstructured.Unstructured {
	enc := map[string]any{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":   name,
			"labels": map[string]any{PartOfLabel: PartOfValue},
		},
		"type": string(corev1.SecretTypeOpaque),
		"data": enc,
	}}
}

// print writes the objects for --dry-run.
func (o *Options) print(objs []*unstructured.Unstructured) error {
	switch o.Output {
	case "yaml":
		for i, obj := range objs {
			data, err := yaml.Marshal(obj.Object)
			if err != nil {
				return err
			}
			if i > 0 {
				io.WriteString(o.Out, "---\n")
			}
			o.Out.Write(data)
		}
	case "json":
		items := make([]any, len(objs))
		for i, obj := range objs {
			items[i] = obj.Object
		}
		data, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s\n", data)
	default:
		for _, obj := range objs {
			fmt.Fprintf(o.Out, "%s/%s (dry run)\n", strings.ToLower(obj.GetKind()), obj.GetName())
		}
	}
	return nil
}
