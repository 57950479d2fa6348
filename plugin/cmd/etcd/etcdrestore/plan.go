package etcdrestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// members are the nodes whose agents run an etcd member, checked to be
// complete: every node's agent must answer, or nothing starts.
func members(nodes agentclient.Nodes) ([]*agentclient.Node, string, error) {
	var out, sqlite []*agentclient.Node
	var down []string
	flavors := map[string]bool{}
	for _, n := range nodes {
		if !n.Ready() {
			down = append(down, fmt.Sprintf("node %s: %v", n.Node, n.Err))
			continue
		}
		if n.IsSQLite() {
			sqlite = append(sqlite, n)
		}
		if n.IsEtcdMember() {
			out = append(out, n)
			flavors[n.Info.RestoreFlavor] = true
		}
	}
	if len(down) > 0 {
		return nil, "", fmt.Errorf("nothing was stopped: every node's agent must answer before a restore starts:\n  %s", strings.Join(down, "\n  "))
	}
	switch {
	case len(sqlite) > 0 && (len(sqlite) > 1 || len(out) > 0):
		return nil, "", fmt.Errorf("nothing was stopped: a k3s server on SQLite is the cluster's only server, but %d SQLite server(s) and %d etcd member(s) answered", len(sqlite), len(out))
	case len(sqlite) == 1:
		return sqlite, flavorSQLite, nil
	case len(out) == 0:
		return nil, "", errors.New("no agent runs on an etcd member")
	}
	if len(flavors) != 1 {
		return nil, "", fmt.Errorf("nothing was stopped: the servers' agents disagree on restore.flavor (%v)", flavors)
	}
	var flavor string
	for f := range flavors {
		flavor = f
	}
	for _, n := range out {
		if n.Info.Etcd.GetMemberName() == "" || len(n.Info.Etcd.GetPeerUrls()) == 0 {
			return nil, "", fmt.Errorf("nothing was stopped: node %s's member did not tell its name and peer URLs (%s)", n.Node, n.Info.Etcd.GetError())
		}
	}
	return out, flavor, nil
}

// inProgress fails when a node is in the middle of a restore (its member
// may be down, its data dir moved aside, so every node that answers is
// asked, and before anything asks etcd).
func inProgress(ctx context.Context, nodes agentclient.Nodes) error {
	var busy []string
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		st, err := n.Conn.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{})
		if err != nil {
			return fmt.Errorf("nothing was stopped: node %s: %s", n.Node, agentclient.Explain(err))
		}
		if st.PlanId != "" && st.Started && !st.Finished {
			busy = append(busy, fmt.Sprintf("node %s runs plan %s (snapshot %s)", n.Node, st.PlanId, st.Snapshot))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("nothing was stopped: another restore is in progress: %s; `kubectl dr etcd restore --status` shows its steps", strings.Join(busy, "; "))
	}
	return nil
}

// flavorSQLite stands for a restore of a k3s server on SQLite: one part,
// on that server.
const flavorSQLite = "sqlite"

// planParts gives every server its part of the plan, with the digest of
// its part's preview (digests by node; "" from an agent that gives none).
func planParts(servers []*agentclient.Node, flavor, planID, resetNode string, snap *dbsnap.Snapshot, digests map[string]string, newHosts, allowUnsigned bool) ([]*agentv1.RestorePlanPart, error) {
	ref := &agentv1.SnapshotRef{Name: snap.Name, AllowUnsigned: allowUnsigned}
	var names, cluster []string
	var reset *agentclient.Node
	for _, n := range servers {
		names = append(names, n.Node)
		for _, u := range n.Info.Etcd.GetPeerUrls() {
			cluster = append(cluster, n.Info.Etcd.GetMemberName()+"="+u)
		}
		if n.Node == resetNode {
			reset = n
		}
	}
	sort.Strings(cluster)
	if flavor == "k3s" || flavor == flavorSQLite {
		if reset == nil {
			return nil, fmt.Errorf("nothing was stopped: %s is not one of the servers (%s)", resetNode, strings.Join(names, ", "))
		}
		if flavor == "k3s" && len(resetClientURLs(reset, newHosts)) == 0 {
			return nil, fmt.Errorf("nothing was stopped: %s's member did not tell its client URLs, which the other servers wait on (%s)", resetNode, reset.Info.Etcd.GetError())
		}
	}
	var parts []*agentv1.RestorePlanPart
	for _, n := range servers {
		part := &agentv1.RestorePlanPart{PlanId: planID, Node: n.Node, Snapshot: ref, SnapshotSha256: snap.SHA256, Servers: names, NewHost: newHosts}
		d, ok := digests[n.Node]
		switch {
		case newHosts:
			// Nothing runs on a new host to preview against: the
			// preflight checked the snapshot against each of them.
			part.NoPreview = true
		case !ok:
			return nil, fmt.Errorf("nothing was stopped: server %s was not part of the preview; run the restore again to preview it too", n.Node)
		case d == "":
			// An agent older than preview digests prepares what it finds.
			part.NoPreview = true
		default:
			part.PreviewDigest = d
		}
		switch {
		case flavor == flavorSQLite:
			part.Flavor, part.Role = agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S, agentv1.RestoreRole_RESTORE_ROLE_SQLITE
		case flavor == "etcd":
			part.Flavor, part.Role = agentv1.RestoreFlavor_RESTORE_FLAVOR_ETCD, agentv1.RestoreRole_RESTORE_ROLE_RESET
			part.MemberName, part.PeerUrls = n.Info.Etcd.GetMemberName(), n.Info.Etcd.GetPeerUrls()
			part.InitialCluster, part.InitialClusterToken = strings.Join(cluster, ","), planID
		case n == reset:
			part.Flavor, part.Role = agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S, agentv1.RestoreRole_RESTORE_ROLE_RESET
			for _, other := range servers {
				if newHosts {
					break
				}
				if other != reset {
					part.OtherPeerUrls = append(part.OtherPeerUrls, other.Info.Etcd.GetPeerUrls()...)
				}
			}
		default:
			part.Flavor, part.Role = agentv1.RestoreFlavor_RESTORE_FLAVOR_K3S, agentv1.RestoreRole_RESTORE_ROLE_REJOIN
			part.ResetServer, part.ResetClientUrls = reset.Node, resetClientURLs(reset, newHosts)
		}
		parts = append(parts, part)
	}
	return parts, nil
}

// resetClientURLs are where the servers that rejoin wait for the reset
// server's etcd: its member's client URLs, or on a new host (no member
// runs yet) the endpoint its agent is configured with.
func resetClientURLs(reset *agentclient.Node, newHosts bool) []string {
	if urls := reset.Info.Etcd.GetClientUrls(); len(urls) > 0 || !newHosts {
		return urls
	}
	if ep := reset.Info.Etcd.GetEndpoint(); ep != "" {
		return []string{ep}
	}
	return nil
}

// outcome is one member's part as the plugin saw it.
type outcome struct {
	node  string
	steps map[string]*agentv1.RestoreStep
	order []string
	err   error
}

// restore hands every member its part, starts them, follows their steps
// and waits for the API server. For k3s, resetNode resets the cluster from
// the snapshot (it already holds the preview's verified copy) and the other
// servers rejoin it.
func (o *Options) restore(ctx context.Context, nodes agentclient.Nodes, snap *dbsnap.Snapshot, resetNode string, digests map[string]string, liveRevision int64) error {
	servers, flavor, err := members(nodes)
	if err != nil {
		return err
	}
	if err := inProgress(ctx, nodes); err != nil {
		return err
	}
	d := &Datastore{Out: o.Out, ErrOut: o.ErrOut, Servers: servers, Flavor: flavor, Reset: resetNode, Snapshot: snap, Digests: digests, RevisionFloor: liveRevision, AllowUnsigned: o.AllowUnsigned}
	res, err := d.Run(ctx)
	if err != nil {
		return err
	}
	apiUp, apiErr := WaitAPIServer(ctx, o.f, 3*time.Minute)
	res.PrintTimeline(o.Out)
	fmt.Fprint(o.Out, res.Summary())
	if apiErr != nil {
		fmt.Fprintf(o.Out, "; the API server did not answer: %v\n", apiErr)
		return cmdutil.Partial("etcd is restored but the API server did not answer within 3m: check kube-apiserver")
	}
	fmt.Fprintf(o.Out, "; API server answering after %s (RTO)\n", apiUp.Round(100*time.Millisecond)+res.EtcdUp.Round(100*time.Millisecond))
	return nil
}

// Datastore is one restore of the cluster's datastore across its servers:
// what kubectl dr etcd restore runs after its preview, and kubectl dr
// recover onto new hosts.
type Datastore struct {
	Out, ErrOut io.Writer
	Servers     []*agentclient.Node
	// Flavor is the servers' restore.flavor, or "sqlite" (FlavorSQLite).
	Flavor string
	// Reset is the server that resets the cluster (k3s).
	Reset    string
	Snapshot *dbsnap.Snapshot
	// Digests are the servers' preview digests (by node).
	Digests map[string]string
	// NewHosts: the servers hold no member yet (NewHost parts, no preview).
	NewHosts bool
	// RevisionFloor is the live revision the preview saw: the restored
	// members start past it (etcd flavour; RestorePlanPart.revision_floor).
	RevisionFloor int64
	// OnStep, when set, is told every step as it changes.
	OnStep func(node string, st *agentv1.RestoreStep)
	// StartAfter, when set, holds every server before k3s starts
	// (HoldStartRestorePlan) until it returns: nil lets them start, an
	// error ends their plans there, the datastore restored but k3s not
	// started (kubectl dr recover: the volumes' files come back first).
	StartAfter func(ctx context.Context) error
	// PeersWait bounds how long the k3s flavour's servers wait on each
	// other (the joining servers for the reset server's etcd to be
	// healthy); 0: the agents' default, 10 minutes.
	PeersWait time.Duration
	// AllowUnsigned lets the agents restore a snapshot whose record has no
	// signature (--allow-unsigned).
	AllowUnsigned bool
}

// stepWaitResetServer is a joining server's wait for the reset server.
const stepWaitResetServer = "wait-reset-server"

// peersLimit is the agents' bound on the servers' waits on each other
// when the plan gives none (restoreplan.PeersLimit).
const peersLimit = 10 * time.Minute

func (d *Datastore) peersWait() time.Duration {
	if d.PeersWait > 0 {
		return d.PeersWait
	}
	return peersLimit
}

// FlavorSQLite stands for a restore of a k3s server on SQLite.
const FlavorSQLite = flavorSQLite

// Servers are the nodes a restore onto new hosts runs on, and their
// flavour: the agents of nodes with a k3s data dir (server role), all of
// the k3s flavour. Every agent must answer.
func Servers(nodes agentclient.Nodes, names []string) ([]*agentclient.Node, string, error) {
	var out []*agentclient.Node
	var down []string
	flavors := map[string]bool{}
	for _, n := range nodes {
		if !n.Ready() {
			down = append(down, fmt.Sprintf("node %s: %v", n.Node, n.Err))
			continue
		}
		want := slices.Contains(names, n.Node)
		if len(names) == 0 {
			want = slices.Contains(n.Info.GetRoles(), agentv1.NodeRole_NODE_ROLE_SERVER)
		}
		if want {
			out = append(out, n)
			flavors[n.Info.GetRestoreFlavor()] = true
		}
	}
	if len(down) > 0 {
		return nil, "", fmt.Errorf("nothing was stopped: every node's agent must answer before a recovery starts:\n  %s", strings.Join(down, "\n  "))
	}
	for _, name := range names {
		if !slices.ContainsFunc(out, func(n *agentclient.Node) bool { return n.Node == name }) {
			return nil, "", fmt.Errorf("--server %s: no agent answers for it", name)
		}
	}
	if len(out) == 0 {
		return nil, "", errors.New("no agent runs on a server (a node with k3s's data dir, <data-dir>/server): name them with --server NODE")
	}
	if len(flavors) != 1 || !flavors["k3s"] {
		return nil, "", fmt.Errorf("nothing was stopped: a recovery onto new hosts restores k3s servers (restore.flavor k3s); the servers' agents have %v", slices.Sorted(maps.Keys(flavors)))
	}
	return out, "k3s", nil
}

// DatastoreResult is how a datastore restore went.
type DatastoreResult struct {
	PlanID string
	Start  time.Time
	// EtcdUp is how long the servers took until every part was done.
	EtcdUp   time.Duration
	outcomes []*outcome
	flavor   string
	reset    string
}

// Summary is the line saying the datastore is back (without newline).
func (r *DatastoreResult) Summary() string {
	if r.flavor == flavorSQLite {
		return fmt.Sprintf("kine serving the restored state.db on %s after %s", r.reset, r.EtcdUp.Round(100*time.Millisecond))
	}
	return fmt.Sprintf("etcd healthy on %d member(s) after %s", len(r.outcomes), r.EtcdUp.Round(100*time.Millisecond))
}

// Run hands every server its part, has each verify the snapshot where it
// uses it before anything stops, starts them (behind the barrier when
// there are several), and follows their steps until every part ended.
func (d *Datastore) Run(ctx context.Context) (*DatastoreResult, error) {
	servers, flavor, resetNode, snap := d.Servers, d.Flavor, d.Reset, d.Snapshot
	planID := fmt.Sprintf("restore-%d", time.Now().Unix())
	parts, err := planParts(servers, flavor, planID, resetNode, snap, d.Digests, d.NewHosts, d.AllowUnsigned)
	for _, p := range parts {
		p.RevisionFloor = d.RevisionFloor
		p.PeersWaitSeconds = int64(d.PeersWait / time.Second)
	}
	if err != nil {
		return nil, err
	}
	for _, part := range parts {
		if part.NoPreview && !d.NewHosts {
			fmt.Fprintf(d.ErrOut, "warning: node %s's agent does not tie its part to the preview (no digest): upgrade the agents\n", part.Node)
		}
	}
	var names []string
	for _, n := range servers {
		names = append(names, n.Node)
	}

	// Every part is handed out, and the snapshot verified where it is
	// used, before anything stops.
	how := "every member restores it"
	switch {
	case flavor == "k3s" && d.NewHosts:
		how = fmt.Sprintf("%s resets the cluster from it onto a new host, the others join it; the token and encryption config kept with the snapshot are put in place first", resetNode)
	case flavor == "k3s":
		how = fmt.Sprintf("%s resets the cluster from it, the others rejoin", resetNode)
	case flavor == flavorSQLite && d.NewHosts:
		how = fmt.Sprintf("%s puts it in place of server/db/state.db (SQLite) on a new host; the token kept with the snapshot is put in place first", resetNode)
	case flavor == flavorSQLite:
		how = fmt.Sprintf("%s puts it in place of server/db/state.db (SQLite), the old files moved aside", resetNode)
	}
	fmt.Fprintf(d.ErrOut, "plan %s: %s (revision %d) on %s; %s\n", planID, snap.Name, snap.Revision, strings.Join(names, ", "), how)
	errs := onEach(servers, func(i int, n *agentclient.Node) error {
		if _, err := n.Conn.PrepareRestorePlan(ctx, &agentv1.PrepareRestorePlanRequest{Part: parts[i]}); err != nil {
			return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		// The parts that were prepared must not hold their nodes.
		var prepared []*agentclient.Node
		for i, n := range servers {
			if errs[i] == nil {
				prepared = append(prepared, n)
			}
		}
		return nil, fmt.Errorf("nothing was stopped, the plan was not started:\n%w", errors.Join(err, discardAll(ctx, prepared, planID)))
	}
	// With several members, every member stops before any data dir
	// changes: the parts wait at a barrier after their stop.
	held := len(servers) > 1
	if held {
		if err := hold(ctx, servers, planID); err != nil {
			return nil, fmt.Errorf("nothing was stopped, the plan was not started:\n%w", errors.Join(err, discardAll(ctx, servers, planID)))
		}
		fmt.Fprintf(d.ErrOut, "plan %s: every member has its part and a verified copy of the snapshot; starting (every member stops before any data dir changes)\n", planID)
	} else {
		fmt.Fprintf(d.ErrOut, "plan %s: every member has its part and a verified copy of the snapshot; starting\n", planID)
	}
	if d.StartAfter != nil {
		if err := holdStart(ctx, servers, planID); err != nil {
			return nil, fmt.Errorf("nothing was stopped, the plan was not started:\n%w", errors.Join(err, discardAll(ctx, servers, planID)))
		}
	}
	watch := newBarrierWatch()
	starts := newStartWatch()
	var wg sync.WaitGroup

	start := time.Now()
	outcomes := make([]*outcome, len(servers))
	var mu sync.Mutex
	for i, n := range servers {
		outcomes[i] = &outcome{node: n.Node, steps: map[string]*agentv1.RestoreStep{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			oc := outcomes[i]
			oc.err = follow(ctx, n, planID, func(st *agentv1.RestoreStep) {
				watch.step(n.Node, st)
				starts.step(n.Node, st)
				mu.Lock()
				defer mu.Unlock()
				prev, seen := oc.steps[st.Name]
				if !seen {
					oc.order = append(oc.order, st.Name)
				}
				oc.steps[st.Name] = st
				if (!seen || prev.State != st.State) && st.State != agentv1.RestoreStep_STATE_PENDING {
					line := fmt.Sprintf("%7s  node %s: %s %s", time.Since(start).Round(100*time.Millisecond), n.Node, st.Name, stateWord(st.State))
					if st.Error != "" {
						line += ": " + st.Error
					}
					if st.Name == stepWaitResetServer && st.State == agentv1.RestoreStep_STATE_RUNNING {
						line += fmt.Sprintf(" (up to %s for %s's etcd to be healthy, then it joins)", d.peersWait(), resetNode)
					}
					fmt.Fprintln(d.ErrOut, line)
					if d.OnStep != nil {
						d.OnStep(n.Node, st)
					}
				}
			})
			watch.ended(n.Node, oc.err)
			starts.ended(n.Node)
		}()
	}
	var notStarted error
	if d.StartAfter != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notStarted = d.releaseStart(ctx, servers, planID, starts)
		}()
	}
	if held {
		if reason := watch.decide(ctx, names); reason != "" {
			fmt.Fprintf(d.ErrOut, "plan %s: calling it off before any data dir changes: %s\n", planID, reason)
			rbErrs := rollBackAll(ctx, servers, planID, reason)
			wg.Wait()
			return nil, reportRollBack(ctx, d.Out, servers, planID, reason, rbErrs)
		}
		fmt.Fprintf(d.ErrOut, "plan %s: every member is stopped; restoring\n", planID)
		if err := goOn(ctx, servers, planID); err != nil {
			fmt.Fprintf(d.ErrOut, "warning: %v\n  a member that does not go on rolls back while the others restore: check `kubectl dr etcd restore --status`\n", err)
		}
	}
	wg.Wait()
	var failed []string
	for _, oc := range outcomes {
		if oc.err != nil {
			failed = append(failed, fmt.Sprintf("node %s: %v", oc.node, oc.err))
		}
	}
	if len(failed) > 0 && notStarted != nil && heldOnly(outcomes) {
		return nil, &NotStartedError{PlanID: planID, Reset: resetNode, Reason: notStarted}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("restore %s did not finish everywhere (`kubectl dr etcd restore --status` shows each node's steps):\n  %s", planID, strings.Join(failed, "\n  "))
	}
	return &DatastoreResult{PlanID: planID, Start: start, EtcdUp: time.Since(start), outcomes: outcomes, flavor: flavor, reset: resetNode}, nil
}

// follow starts the node's part and streams its steps until it ends. A
// broken stream (the agent restarted, the port-forward dropped) is
// followed up by polling the node's state file through RestorePlanStatus.
func follow(ctx context.Context, n *agentclient.Node, planID string, onStep func(*agentv1.RestoreStep)) error {
	stream, err := n.Conn.StartRestorePlan(ctx, &agentv1.StartRestorePlanRequest{PlanId: planID})
	if err == nil {
		for {
			ev, rerr := stream.Recv()
			if rerr != nil {
				if agentclient.IsEOF(rerr) {
					return nil
				}
				err = rerr
				break
			}
			onStep(ev.Step)
		}
	}
	if code := status.Code(err); code == codes.Aborted || code == codes.NotFound || code == codes.FailedPrecondition {
		return errors.New(agentclient.Explain(err))
	}
	// Poll until the state file says finished.
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, serr := n.Conn.RestorePlanStatus(cctx, &agentv1.RestorePlanStatusRequest{PlanId: planID})
		cancel()
		if serr == nil {
			for _, s := range st.Steps {
				onStep(s)
			}
			if st.Finished {
				for _, s := range st.Steps {
					if s.State == agentv1.RestoreStep_STATE_FAILED {
						return fmt.Errorf("step %s failed: %s; %s", s.Name, s.Error, st.Hint)
					}
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return fmt.Errorf("lost the agent (%v) and it did not report the plan finished within 10 minutes", err)
}

func stateWord(s agentv1.RestoreStep_State) string {
	switch s {
	case agentv1.RestoreStep_STATE_RUNNING:
		return "started"
	case agentv1.RestoreStep_STATE_DONE:
		return "done"
	case agentv1.RestoreStep_STATE_FAILED:
		return "FAILED"
	}
	return "pending"
}

// WaitAPIServer polls the API server's /readyz until it is ready and
// serves a list from etcd; it returns how long it took.
func WaitAPIServer(ctx context.Context, f cmdutil.Factory, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	cs, err := f.Clientset()
	if err != nil {
		return 0, err
	}
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			// A list served from etcd, not the watch cache.
			if _, err = cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				return time.Since(start), nil
			}
		}
		if time.Since(start) > limit {
			return time.Since(start), err
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// PrintTimeline writes each node's steps with their durations.
func (r *DatastoreResult) PrintTimeline(w io.Writer) {
	start := r.Start
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "NODE\tSTEP\tSTARTED\tTOOK")
	for _, oc := range r.outcomes {
		for _, name := range oc.order {
			st := oc.steps[name]
			if st.Started == nil || st.Finished == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t+%s\t%s\n", oc.node, name,
				st.Started.AsTime().Sub(start).Round(100*time.Millisecond), st.Finished.AsTime().Sub(st.Started.AsTime()).Round(time.Millisecond))
		}
	}
	tw.Flush()
}

// status prints each server's latest plan.
func (o *Options) status(ctx context.Context, nodes agentclient.Nodes) error {
	var failed bool
	for _, n := range nodes {
		if !n.Ready() {
			fmt.Fprintf(o.ErrOut, "node %s: %v\n", n.Node, n.Err)
			failed = true
			continue
		}
		// A server on a new host whose plan ended before it joined holds
		// no member yet, and has a plan to show.
		if !n.HoldsDatastore() && !slices.Contains(n.Info.GetRoles(), agentv1.NodeRole_NODE_ROLE_SERVER) {
			continue
		}
		st, err := n.Conn.RestorePlanStatus(ctx, &agentv1.RestorePlanStatusRequest{})
		if err != nil {
			fmt.Fprintf(o.ErrOut, "node %s: %s\n", n.Node, agentclient.Explain(err))
			failed = true
			continue
		}
		if st.PlanId == "" {
			fmt.Fprintf(o.Out, "node %s: no restore plan\n", n.Node)
			continue
		}
		state := "running"
		switch {
		case st.Finished:
			state = "finished"
		case !st.Started:
			state = "prepared, not started"
		}
		fmt.Fprintf(o.Out, "node %s: plan %s %s\n", n.Node, st.PlanId, state)
		for _, s := range st.Steps {
			word := stateWord(s.State)
			if st.Finished && s.State == agentv1.RestoreStep_STATE_PENDING {
				word = "not run"
			}
			line := fmt.Sprintf("  %-18s %s", s.Name, word)
			if s.Started != nil && s.Finished != nil {
				line += fmt.Sprintf(" (%s)", s.Finished.AsTime().Sub(s.Started.AsTime()).Round(100*time.Millisecond))
			}
			if s.Error != "" {
				line += ": " + s.Error
			}
			fmt.Fprintln(o.Out, line)
		}
		if st.Hint != "" {
			fmt.Fprintf(o.Out, "  next: %s\n", st.Hint)
		}
	}
	if failed {
		return cmdutil.Partial("some nodes could not be asked")
	}
	return nil
}
