package recover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/bucket"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/etcd/etcdrestore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/restore"
)

// Options for `kubectl dr recover`.
type Options struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	To            string
	Backup        string
	Latest        bool
	PG            []string
	PGTarget      []string
	SkipLayer     []string
	SkipPreflight []string
	Servers       []string
	Node          string
	KeyFile       string
	APITimeout    time.Duration
	JoinTimeout   time.Duration
	AllowUnsigned bool
	PruneNodes    bool
	DryRun        bool
	Yes           bool

	target    recoveryplan.Target
	pgTargets map[string]string
}

// NewCmdRecover returns `kubectl dr recover`.
func NewCmdRecover(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "recover --to TIME|--backup ID|--latest [--pg SOURCE...] [--prune-nodes] [--dry-run] [--yes]",
		Short: "Recover the whole platform onto new hosts, to one moment",
		Long: `Recovers the platform onto new hosts after the old cluster is gone: run it
where the new servers' agents are reachable (direct mode: --agent NODE=HOST:PORT
or $KUBECTL_DR_AGENTS; no API server is needed), with the store named by
flags or environment (--store, --cluster-id).

It first prints the plan: for every layer the newest restorable point at or
before --to (one moment for the whole platform): the datastore snapshot,
each node's file snapshot, each database's recovery target (the time
itself when the WAL archive covers it, else the newest point before it,
said so) and each bucket's pass, with why each was picked. A layer with
nothing at or before the time refuses the recovery before anything starts,
unless --skip-layer LAYER leaves it out.

Then each server checks the snapshot against itself (the preflight: the
server token kept with the snapshot matches its k3s bootstrap data, k3s
on the host is not older than the snapshot's, the encryption config kept
with it decrypts its Secrets, disk). A failed check refuses, with what to
do; --skip-preflight CHECK goes on anyway.

After --yes (or a yes on a terminal) it restores, in parallel: the
datastore onto the servers (the token and encryption config kept with the
snapshot put in place; one server resets the cluster, the others join),
each node's files into their original paths, each database into its data
directory (or --pg-target SOURCE=DIR) recovered to the time and checked in
a scratch instance, and each bucket into its original bucket (only what
differs). It then waits for the API server (--kubeconfig: the recovered
server's), runs the health checks of the agents' config (drill.checks:
SQL on the database's node, HTTP from one agent), lists the Node objects
of hosts no agent runs on (the old cluster's; --prune-nodes deletes them)
and prints the timeline and the RTO.

A step that fails stops the recovery there, saying what was done and how
to resume.`,
		Example: `  kubectl dr recover --to 2026-11-21T10:15:00Z --store s3://backups/prod --cluster-id 0b7c... --dry-run
  kubectl dr recover --to 2026-11-21T10:15:00Z --yes --prune-nodes
  kubectl dr recover --backup backup-20261121-101500 --skip-layer bucket --yes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return cmdutil.UsageError("recover takes no arguments: name the moment with --to TIME, --backup ID or --latest")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	f.BindStoreFlags(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&o.To, "to", "", "recover every layer to its newest point at or before this time (RFC 3339)")
	fl.StringVar(&o.Backup, "backup", "", "recover to this backup set")
	fl.BoolVar(&o.Latest, "latest", false, "recover every layer to its newest point")
	fl.StringArrayVar(&o.PG, "pg", nil, "recover only these WAL sources' databases (repeatable; default every one)")
	fl.StringArrayVar(&o.PGTarget, "pg-target", nil, "restore SOURCE's database into DIR on its node instead of its data directory (SOURCE=DIR, repeatable)")
	fl.StringArrayVar(&o.SkipLayer, "skip-layer", nil, "leave this layer out ("+strings.Join(recoveryplan.Layers, ", ")+"; repeatable)")
	fl.StringArrayVar(&o.SkipPreflight, "skip-preflight", nil, "go on although this preflight check failed ("+strings.Join(etcdrestore.PreflightChecks, ", ")+"; repeatable)")
	fl.StringArrayVar(&o.Servers, "server", nil, "the new servers (default: the agents of nodes with k3s's data dir)")
	fl.StringVar(&o.Node, "node", "", "the server that resets the cluster (default: the snapshot's node when it is one, else the first)")
	fl.StringVar(&o.KeyFile, "key-file", "", "the snapshot key, sent to the agents for the datastore and read here for the buckets' copies (default $DR_SNAPSHOT_KEY, else the install's Secret)")
	fl.BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage)
	fl.DurationVar(&o.JoinTimeout, "join-timeout", 10*time.Minute, "how long each joining server waits for the reset server's etcd to be healthy (counted once the volumes are restored and k3s starts)")
	fl.DurationVar(&o.APITimeout, "api-timeout", 5*time.Minute, "how long to wait for the API server once the datastore is back")
	fl.BoolVar(&o.PruneNodes, "prune-nodes", false, "delete the Node objects of hosts no agent runs on")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan and the preflight, change nothing")
	fl.BoolVarP(&o.Yes, "yes", "y", false, "recover without asking")
	return cmd
}

// Complete has nothing to take.
func (o *Options) Complete(*cobra.Command, []string) error { return nil }

// Validate checks the flags before anything is read.
func (o *Options) Validate() error {
	n := 0
	for _, set := range []bool{o.To != "", o.Backup != "", o.Latest} {
		if set {
			n++
		}
	}
	if n != 1 {
		return cmdutil.UsageError("name the moment: --to TIME, --backup ID or --latest (exactly one)")
	}
	switch {
	case o.To != "":
		t, err := time.Parse(time.RFC3339Nano, o.To)
		if err != nil {
			return cmdutil.UsageError("--to %q: want a time such as 2026-11-21T10:15:00Z (RFC 3339)", o.To)
		}
		if t.After(time.Now()) {
			return cmdutil.UsageError("--to %s is in the future: use --latest for the newest of everything", o.To)
		}
		o.target.Time = t
	case o.Backup != "":
		if err := backupset.ValidateID(o.Backup); err != nil {
			return cmdutil.UsageError("%w", err)
		}
		o.target.BackupSet = o.Backup
	default:
		o.target.Latest = true
	}
	for _, l := range o.SkipLayer {
		if !slices.Contains(recoveryplan.Layers, l) {
			return cmdutil.UsageError("--skip-layer %q: want one of %s", l, strings.Join(recoveryplan.Layers, ", "))
		}
	}
	for _, c := range o.SkipPreflight {
		if !slices.Contains(etcdrestore.PreflightChecks, c) {
			return cmdutil.UsageError("--skip-preflight %q: want one of %s", c, strings.Join(etcdrestore.PreflightChecks, ", "))
		}
	}
	o.pgTargets = map[string]string{}
	for _, kv := range o.PGTarget {
		src, dir, ok := strings.Cut(kv, "=")
		if !ok || src == "" || !strings.HasPrefix(dir, "/") {
			return cmdutil.UsageError("--pg-target %q: want SOURCE=/absolute/dir", kv)
		}
		o.pgTargets[src] = dir
	}
	if o.JoinTimeout < time.Second {
		return cmdutil.UsageError("--join-timeout %s: want a duration of a second or more", o.JoinTimeout)
	}
	if o.APITimeout <= 0 {
		return cmdutil.UsageError("--api-timeout %s: want a positive duration", o.APITimeout)
	}
	return nil
}

// syncWriter serializes the writes of the layers restored at once.
type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// track is one layer part's run, for the timeline.
type track struct {
	layer, what, node string
	start, end        time.Time
	detail            string
	err               error
	resume            string
	// held: the datastore is restored, k3s not started because a layer
	// restored into volumes failed (err says so).
	held bool
}

// Run plans, checks, asks and recovers.
func (o *Options) Run(ctx context.Context) error {
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	in, skipped, err := recoveryplan.Load(ctx, store, nil, time.Now().UTC(), cmdutil.RecordPolicy(ctx, o.f, o.AllowUnsigned))
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		fmt.Fprintln(o.ErrOut, "warning:", sk)
	}
	plan, err := recoveryplan.Pick(in, o.target)
	if err != nil {
		return err
	}
	if plan, err = o.restrictPG(plan); err != nil {
		return err
	}
	plan = plan.Without(o.SkipLayer...)
	fmt.Fprintf(o.Out, "Recovery plan (%s):\n", o.target)
	if err := plan.WriteTable(o.Out); err != nil {
		return err
	}
	fmt.Fprintln(o.Out)
	if missing := plan.Missing(); len(missing) > 0 {
		return fmt.Errorf("%w; nothing was started (--skip-layer LAYER recovers without a layer)", recoveryplan.MissingError(missing))
	}
	if len(plan.Parts) == 0 {
		return errors.New("nothing to recover: every layer was left out")
	}

	opts := o.f.AgentOptions(nil)
	if o.KeyFile != "" {
		// A recovery often runs with no API server to read the Secret from.
		opts.SnapshotKey = agentclient.OnceKey(func(ctx context.Context) ([]byte, error) {
			return cmdutil.IdentityBytes(o.f.SnapshotKey(ctx, o.KeyFile))
		})
	}
	nodes, err := agentclient.Connect(ctx, opts)
	if err != nil {
		return err
	}
	defer nodes.Close()
	var etcdPart *recoveryplan.Part
	for i := range plan.Parts {
		p := &plan.Parts[i]
		if p.Layer == recoveryplan.LayerEtcd {
			etcdPart = p
			continue
		}
		if p.Node == "" {
			continue
		}
		n, ok := nodes.Find(p.Node)
		switch {
		case !ok:
			return fmt.Errorf("nothing was started: the plan restores %s %s on node %s, and no agent answers for it: give its agent (--agent %s=HOST:PORT), or --skip-layer %s", p.Layer, p.What, p.Node, p.Node, p.Layer)
		case !n.Ready():
			return fmt.Errorf("nothing was started: node %s: %v", p.Node, n.Err)
		}
	}
	var servers []*agentclient.Node
	var reset string
	if etcdPart != nil {
		if servers, _, err = etcdrestore.Servers(nodes, o.Servers); err != nil {
			return err
		}
		reset = o.resetNode(servers, etcdPart.Snapshot.Node)
		if reset == "" {
			return cmdutil.UsageError("--node %s is not one of the servers", o.Node)
		}
		if etcdPart.Snapshot.DatastoreKind() == dbsnap.DatastoreSQLite {
			if servers, err = o.sqliteServer(servers, etcdPart.Snapshot); err != nil {
				return err
			}
			reset = servers[0].Node
		}
		fmt.Fprintf(o.Out, "Preflight of snapshot %s on the new servers (nothing stops before it passes):\n", etcdPart.Snapshot.Name)
		if err := etcdrestore.Preflight(ctx, o.Out, o.ErrOut, servers, &agentv1.SnapshotRef{Name: etcdPart.Snapshot.Name, AllowUnsigned: o.AllowUnsigned}, true, o.SkipPreflight); err != nil {
			return err
		}
		fmt.Fprintln(o.Out)
	}
	if o.DryRun {
		fmt.Fprintln(o.Out, "Nothing was changed (--dry-run).")
		return nil
	}
	if !o.Yes && !cmdutil.Confirm(o.In, o.ErrOut, "Recover the platform onto these hosts as planned?") {
		return cmdutil.UsageError("nothing was changed: this was the plan; run again with --yes to recover")
	}
	return o.recover(ctx, nodes, plan, servers, reset)
}

// restrictPG keeps only the WAL sources --pg names.
func (o *Options) restrictPG(plan *recoveryplan.Plan) (*recoveryplan.Plan, error) {
	if len(o.PG) == 0 {
		return plan, nil
	}
	var known []string
	out := &recoveryplan.Plan{Target: plan.Target, At: plan.At}
	for _, p := range plan.Parts {
		if p.Layer == recoveryplan.LayerPostgres {
			known = append(known, p.What)
			if !slices.Contains(o.PG, p.What) {
				continue
			}
		}
		out.Parts = append(out.Parts, p)
	}
	for _, s := range o.PG {
		if !slices.Contains(known, s) {
			return nil, cmdutil.UsageError("--pg %s: the store has no WAL source of that name (it has %s)", s, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// sqliteServer picks the one server a snapshot of k3s on SQLite goes to:
// such a cluster has a single server. With more server agents answering,
// it is the one --node names, else the snapshot's own node.
func (o *Options) sqliteServer(servers []*agentclient.Node, snap *dbsnap.Snapshot) ([]*agentclient.Node, error) {
	if len(servers) == 1 {
		return servers, nil
	}
	want := o.Node
	if want == "" {
		want = snap.Node
	}
	var names []string
	for _, n := range servers {
		names = append(names, n.Node)
	}
	for _, n := range servers {
		if n.Node == want {
			others := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n.Node })
			fmt.Fprintf(o.ErrOut, "note: snapshot %s is of k3s's SQLite datastore, which has one server: only %s restores it; the agents of %s are left alone\n", snap.Name, n.Node, strings.Join(others, ", "))
			return []*agentclient.Node{n}, nil
		}
	}
	return nil, cmdutil.UsageError("snapshot %s is of k3s's SQLite datastore, which has one server, and %d server agents answer (%s), none of them its node %s: name the new server with --node NODE (or --server NODE)", snap.Name, len(servers), strings.Join(names, ", "), snap.Node)
}

func (o *Options) resetNode(servers []*agentclient.Node, snapNode string) string {
	want := o.Node
	for _, pick := range []string{want, snapNode} {
		if pick == "" {
			continue
		}
		for _, n := range servers {
			if n.Node == pick {
				return n.Node
			}
		}
		if pick == want {
			return ""
		}
	}
	return servers[0].Node
}

// recover runs the plan's layers, then the API server, the checks and the
// stale nodes.
func (o *Options) recover(ctx context.Context, nodes agentclient.Nodes, plan *recoveryplan.Plan, servers []*agentclient.Node, reset string) error {
	var mu sync.Mutex
	out, errOut := syncWriter{&mu, o.Out}, syncWriter{&mu, o.ErrOut}
	streams := genericiooptions.IOStreams{In: o.In, Out: out, ErrOut: errOut}
	start := time.Now()
	var (
		wg     sync.WaitGroup
		tmu    sync.Mutex
		tracks []*track
		ds     *etcdrestore.DatastoreResult
	)
	// k3s starts the pods once it runs: it starts only when the layers
	// restored into volumes (files, databases) are back.
	var (
		volumes     sync.WaitGroup
		volumesErrs []error
		volumesDone = make(chan struct{})
	)
	for _, p := range plan.Parts {
		if p.Layer == recoveryplan.LayerFiles || p.Layer == recoveryplan.LayerPostgres {
			volumes.Add(1)
		}
	}
	go func() { volumes.Wait(); close(volumesDone) }()
	startAfter := func(ctx context.Context) error {
		select {
		case <-volumesDone:
		case <-ctx.Done():
			return fmt.Errorf("the recovery was interrupted before the volumes were restored: %w", ctx.Err())
		}
		tmu.Lock()
		defer tmu.Unlock()
		if err := errors.Join(volumesErrs...); err != nil {
			return fmt.Errorf("%s; restore it, then start k3s", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return nil
	}
	run := func(t *track, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.start = time.Now()
			t.err = fn()
			t.end = time.Now()
			tmu.Lock()
			tracks = append(tracks, t)
			if t.layer == recoveryplan.LayerFiles || t.layer == recoveryplan.LayerPostgres {
				if t.err != nil {
					volumesErrs = append(volumesErrs, fmt.Errorf("%s %s (node %s) failed", t.layer, t.what, orDash(t.node)))
				}
				volumes.Done()
			}
			tmu.Unlock()
		}()
	}
	for _, p := range plan.Parts {
		switch p.Layer {
		case recoveryplan.LayerEtcd:
			t := &track{layer: p.Layer, what: p.What, node: reset, resume: "kubectl dr etcd restore --status shows each server's steps and what to run; when k3s was held because a layer restored into volumes failed, restore that layer, then start k3s on the reset server and then on the others"}
			run(t, func() error {
				flavor := "k3s"
				if p.Snapshot.DatastoreKind() == dbsnap.DatastoreSQLite {
					flavor = etcdrestore.FlavorSQLite
				}
				d := &etcdrestore.Datastore{Out: out, ErrOut: errOut, Servers: servers, Flavor: flavor, Reset: reset, Snapshot: p.Snapshot, NewHosts: true, PeersWait: o.JoinTimeout, AllowUnsigned: o.AllowUnsigned}
				if len(plan.Layer(recoveryplan.LayerFiles))+len(plan.Layer(recoveryplan.LayerPostgres)) > 0 {
					d.StartAfter = startAfter
				}
				res, err := d.Run(ctx)
				if err == nil {
					ds = res
					t.detail = res.Summary()
				}
				var ns *etcdrestore.NotStartedError
				if errors.As(err, &ns) {
					t.held = true
					t.detail = "restored and in place, k3s not started"
				}
				return err
			})
		case recoveryplan.LayerFiles:
			n, _ := nodes.Find(p.Node)
			t := &track{layer: p.Layer, what: p.What, node: p.Node,
				resume: fmt.Sprintf("kubectl dr restore %s --node %s (it restores only what differs)", p.BackupSet, p.Node)}
			run(t, func() error {
				return restore.Files(ctx, streams, p.BackupSet, []restore.Job{{Node: n, Label: p.Node, Target: &agentv1.FileRestoreTarget{
					SnapshotId: p.SnapshotID, BackupSet: p.BackupSet, SourceNode: p.Node,
				}}}, true, "table")
			})
		case recoveryplan.LayerPostgres:
			n, _ := nodes.Find(p.Node)
			dir := p.PGData
			if d, ok := o.pgTargets[p.What]; ok {
				dir = d
			}
			to := "--latest"
			if !p.PGTime.IsZero() {
				to = "--to " + p.PGTime.UTC().Format(time.RFC3339)
			}
			t := &track{layer: p.Layer, what: p.What, node: p.Node,
				resume: fmt.Sprintf("empty %s, then kubectl dr pg restore %s %s --target-dir %s --node %s --verify", dir, p.What, to, dir, p.Node)}
			run(t, func() error {
				detail, err := restorePostgres(ctx, n, p, dir, o.AllowUnsigned, errOut)
				t.detail = detail
				return err
			})
		case recoveryplan.LayerBucket:
			t := &track{layer: p.Layer, what: p.What,
				resume: fmt.Sprintf("kubectl dr bucket restore %s --to %s --yes (it writes only what differs)", p.What, p.BucketTo.UTC().Format(time.RFC3339))}
			run(t, func() error {
				return bucket.Restore(ctx, o.f, streams, p.What, p.BucketTo, o.KeyFile)
			})
		}
	}
	wg.Wait()
	sort.Slice(tracks, func(i, j int) bool { return tracks[i].start.Before(tracks[j].start) })
	var failed []string
	var held *track
	for _, t := range tracks {
		switch {
		case t.held:
			held = t
		case t.err != nil:
			failed = append(failed, fmt.Sprintf("%s %s (node %s): %v\n    to resume: %s", t.layer, t.what, orDash(t.node), t.err, t.resume))
		}
	}
	if held != nil && len(failed) == 0 {
		// Held without a failed layer: the recovery was interrupted.
		failed = append(failed, fmt.Sprintf("%s %s (node %s): %v", held.layer, held.what, orDash(held.node), held.err))
	}
	if len(failed) > 0 {
		o.printTimeline(ds, tracks, start, time.Time{})
		msg := fmt.Sprintf("the recovery stopped: %d part(s) failed, the others are restored (the timeline above); nothing after them ran (API server, checks, stale nodes):\n  %s", len(failed), strings.Join(failed, "\n  "))
		if held != nil {
			msg += fmt.Sprintf("\nthen: %v", held.err)
		}
		return errors.New(msg)
	}

	if ds != nil || len(plan.Layer(recoveryplan.LayerEtcd)) > 0 {
		fmt.Fprintln(o.ErrOut, "waiting for the API server")
	}
	apiTook, apiErr := etcdrestore.WaitAPIServer(ctx, o.f, o.APITimeout)
	apiUp := time.Now()
	if apiErr != nil {
		o.printTimeline(ds, tracks, start, time.Time{})
		return cmdutil.Partial("every layer is restored, but the API server did not answer within %s (%v): start k3s on the servers and check its log; then run the checks with kubectl dr recover again --dry-run", apiTook.Round(time.Second), apiErr)
	}
	checksFailed := o.runChecks(ctx, nodes)
	stale := o.staleNodes(ctx, nodes)
	o.printTimeline(ds, tracks, start, apiUp)
	fmt.Fprintf(o.Out, "RTO %s: from the first restore step to the API server answering with every layer restored\n", apiUp.Sub(start).Round(100*time.Millisecond))
	switch {
	case checksFailed > 0:
		return cmdutil.Partial("recovered, but %d health check(s) failed (above)", checksFailed)
	case stale > 0 && !o.PruneNodes:
		fmt.Fprintf(o.ErrOut, "%d Node object(s) of the old hosts are left: kubectl dr recover --prune-nodes (or kubectl delete node) removes them\n", stale)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// restorePostgres restores one WAL source's database to the plan's target
// and recovers it in a scratch instance (verify), which leaves it promoted
// at the target for the database's own server to start on.
func restorePostgres(ctx context.Context, n *agentclient.Node, p recoveryplan.Part, dir string, allowUnsigned bool, errOut io.Writer) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("the base backup of %s names no data directory: give --pg-target %s=DIR", p.What, p.What)
	}
	req := &agentv1.RestorePostgresRequest{Source: p.What, TargetDir: dir, Verify: true, AllowUnsigned: allowUnsigned}
	if p.PGTime.IsZero() {
		req.Target = &agentv1.RestorePostgresRequest_Latest{Latest: true}
	} else {
		req.Target = &agentv1.RestorePostgresRequest_Time{Time: timestamppb.New(p.PGTime)}
	}
	stream, err := n.Conn.RestorePostgres(ctx, req)
	if err != nil {
		return "", fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return "", fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
		}
		if res := msg.GetResult(); res != nil {
			detail := fmt.Sprintf("%s into %s from base backup %s", p.What, res.TargetDir, res.BaseBackup)
			if res.RecoveredTo != nil {
				detail += ", recovered to " + res.RecoveredTo.AsTime().UTC().Format(time.RFC3339)
			}
			var tables []string
			for t, c := range res.RowCounts {
				tables = append(tables, fmt.Sprintf("%s=%d", t, c))
			}
			sort.Strings(tables)
			if len(tables) > 0 {
				detail += "; rows " + strings.Join(tables, " ")
			}
			fmt.Fprintf(errOut, "postgres %s: %s; start it with: %s\n", p.What, detail, res.StartCommand)
			return detail, nil
		}
	}
}

// runChecks runs the agents' health checks (drill.checks) and prints
// them; it returns how many failed.
func (o *Options) runChecks(ctx context.Context, nodes agentclient.Nodes) int {
	tw := printers.GetNewTabWriter(o.Out)
	fmt.Fprintln(tw, "CHECK\tNODE\tOK\tGOT\tEXPECT\tERROR")
	failed, rows := 0, 0
	http := true
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		resp, err := n.Conn.Recover().RunChecks(ctx, &agentv1.RunChecksRequest{Http: http})
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: node %s: the health checks did not run: %s\n", n.Node, agentclient.Explain(err))
			continue
		}
		http = false
		for _, c := range resp.Checks {
			rows++
			ok := "yes"
			if !c.Ok {
				ok = "NO"
				failed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, n.Node, ok, c.Got, c.Expect, c.Error)
		}
	}
	if rows == 0 {
		fmt.Fprintln(o.ErrOut, "No health checks configured (drill.checks in the agents' config).")
		return 0
	}
	fmt.Fprintln(o.Out, "Health checks:")
	tw.Flush()
	fmt.Fprintln(o.Out)
	return failed
}

// staleNodes lists the Node objects no agent runs on (the old hosts', which
// k3s leaves behind) and deletes them with --prune-nodes; it returns how
// many are left.
func (o *Options) staleNodes(ctx context.Context, nodes agentclient.Nodes) int {
	cs, err := o.f.Clientset()
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: stale nodes not listed: %v\n", err)
		return 0
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: stale nodes not listed: %v\n", err)
		return 0
	}
	var stale []string
	for _, n := range list.Items {
		if _, ok := nodes.Find(n.Name); !ok {
			stale = append(stale, n.Name)
		}
	}
	sort.Strings(stale)
	if len(stale) == 0 {
		fmt.Fprintln(o.Out, "Stale nodes: none (every Node object has an agent).")
		return 0
	}
	if !o.PruneNodes {
		fmt.Fprintf(o.Out, "Stale nodes (in the restored cluster, no agent runs on them): %s\n", strings.Join(stale, ", "))
		return len(stale)
	}
	left := 0
	for _, name := range stale {
		if err := cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			fmt.Fprintf(o.ErrOut, "warning: delete node %s: %v\n", name, err)
			left++
			continue
		}
		fmt.Fprintf(o.Out, "Stale node %s deleted (--prune-nodes)\n", name)
	}
	return left
}

// printTimeline prints the datastore's steps and every layer's run.
func (o *Options) printTimeline(ds *etcdrestore.DatastoreResult, tracks []*track, start, apiUp time.Time) {
	fmt.Fprintln(o.Out, "Timeline:")
	tw := printers.GetNewTabWriter(o.Out)
	fmt.Fprintln(tw, "LAYER\tWHAT\tNODE\tSTARTED\tTOOK\tRESULT")
	for _, t := range tracks {
		res := "done"
		switch {
		case t.held:
			res = "HELD"
		case t.err != nil:
			res = "FAILED"
		}
		if t.detail != "" {
			res += ": " + t.detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t+%s\t%s\t%s\n", t.layer, t.what, orDash(t.node), t.start.Sub(start).Round(100*time.Millisecond), t.end.Sub(t.start).Round(100*time.Millisecond), res)
	}
	if !apiUp.IsZero() {
		fmt.Fprintf(tw, "api-server\t-\t-\t-\t+%s\tanswering\n", apiUp.Sub(start).Round(100*time.Millisecond))
	}
	tw.Flush()
	if ds != nil {
		fmt.Fprintln(o.Out, "\nDatastore steps:")
		ds.PrintTimeline(o.Out)
	}
	fmt.Fprintln(o.Out)
}
