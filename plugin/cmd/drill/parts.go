package drill

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// nodeLayers is what each agent says it can restore (Info with layers):
// its restic snapshots, its WAL sources, the bucket sources it runs.
type nodeLayers map[string][]*agentv1.LayerStatus

// layersOf asks every agent that answered for its layers, in parallel.
func layersOf(ctx context.Context, nodes agentclient.Nodes) nodeLayers {
	out := nodeLayers{}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, agentclient.CallTimeout)
			defer cancel()
			layers := n.Info.GetLayers()
			if info, err := n.Conn.Info(cctx, &agentv1.InfoRequest{Layers: true}); err == nil {
				layers = info.GetLayers()
			}
			mu.Lock()
			out[n.Node] = layers
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// find returns the node's layer row of that layer and name.
func (l nodeLayers) find(node, layer, name string) *agentv1.LayerStatus {
	for _, s := range l[node] {
		if s.Layer == layer && s.Name == name {
			return s
		}
	}
	return nil
}

// walNode is the node whose agent ships the WAL source.
func (l nodeLayers) walNode(source string) string {
	var nodes []string
	for node := range l {
		if l.find(node, "wal", source) != nil {
			nodes = append(nodes, node)
		}
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return ""
	}
	return nodes[0]
}

// walSources lists every WAL source some agent ships.
func (l nodeLayers) walSources() []string {
	var out []string
	for _, rows := range l {
		for _, s := range rows {
			if s.Layer == "wal" && !slices.Contains(out, s.Name) {
				out = append(out, s.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// agentFiles lists the restic snapshots a recovery may restore: those of
// the backup sets, and each node's newest, which its agent reports (file
// backups run on schedules outside sets too).
type agentFiles struct {
	store  objstore.Store
	layers nodeLayers
	// records is what a backup set must pass to be built on.
	records signature.Policy
}

// FileSnapshots implements recoveryplan.FileLister.
func (a agentFiles) FileSnapshots(ctx context.Context) ([]recoveryplan.FileSnapshot, error) {
	var out []recoveryplan.FileSnapshot
	if a.store != nil {
		sets, _, err := backupset.ListVerified(ctx, a.store, a.records)
		if err != nil {
			return nil, err
		}
		if out, err = recoveryplan.SetFiles(sets).FileSnapshots(ctx); err != nil {
			return nil, err
		}
	}
	for node, rows := range a.layers {
		for _, s := range rows {
			if s.Layer != "files" || s.NewestName == "" || s.Newest == nil {
				continue
			}
			known := slices.ContainsFunc(out, func(f recoveryplan.FileSnapshot) bool {
				return f.Node == node && strings.HasPrefix(f.ID, s.NewestName)
			})
			if !known {
				t := s.Newest.AsTime()
				out = append(out, recoveryplan.FileSnapshot{Node: node, ID: s.NewestName, Time: t, Done: t})
			}
		}
	}
	return out, nil
}

// jobs turns the plan into the parts to rehearse, each on the agent that
// would restore it. A part no agent can take fails with why; the notes
// say what the drill leaves out.
func (o *RunOptions) jobs(plan *recoveryplan.Plan, nodes agentclient.Nodes, layers nodeLayers, cfg agentconfig.Drill, id string) (jobs []job, notes []string, err error) {
	known := layers.walSources()
	for _, p := range plan.Layer(recoveryplan.LayerPostgres) {
		if !slices.Contains(known, p.What) {
			known = append(known, p.What)
		}
	}
	sort.Strings(known)
	for _, pg := range o.PG {
		if !slices.Contains(known, pg) {
			list := strings.Join(known, ", ")
			if list == "" {
				list = "none"
			}
			return nil, nil, cmdutil.UsageError("--pg %s: no WAL source of that name (known: %s; kubectl dr wal status lists them)", pg, list)
		}
	}
	wantPG := func(source string) bool { return len(o.PG) == 0 || slices.Contains(o.PG, source) }

	var planned []string
	for _, p := range plan.Parts {
		var j job
		switch p.Layer {
		case recoveryplan.LayerEtcd:
			j = etcdJob(p, nodes, o.AllowUnsigned)
		case recoveryplan.LayerFiles:
			j = filesJob(p, nodes, layers)
		case recoveryplan.LayerPostgres:
			planned = append(planned, p.What)
			if !wantPG(p.What) {
				notes = append(notes, fmt.Sprintf("not rehearsed: postgres/%s (not named with --pg)", p.What))
				continue
			}
			j = postgresJob(p, nodes, layers, cfg, o.AllowUnsigned)
		case recoveryplan.LayerBucket:
			j = bucketJob(p, nodes)
		default:
			continue
		}
		if p.Missing {
			j.req, j.part.Error = nil, "nothing to restore: "+p.Why
		}
		if j.req != nil {
			j.req.DrillId, j.req.Keep = id, o.Keep
		}
		jobs = append(jobs, j)
	}
	// A WAL source an agent ships that has nothing in the store cannot be
	// recovered: the drill says so.
	for _, src := range layers.walSources() {
		if slices.Contains(planned, src) || !wantPG(src) {
			continue
		}
		jobs = append(jobs, job{part: drillreport.Part{Layer: drillreport.LayerPostgres, Name: src, Node: layers.walNode(src),
			Error: "nothing to restore: no base backup of " + src + " in the store: take one with kubectl dr pg basebackup " + src}})
	}
	// A node that backs up files but has no snapshot yet.
	for _, n := range nodes {
		if !n.Ready() {
			continue
		}
		f := layers.find(n.Node, "files", "")
		if f == nil || f.Off != "" || f.NewestName != "" || f.Error != "" {
			continue
		}
		if !slices.ContainsFunc(jobs, func(j job) bool { return j.part.Layer == drillreport.LayerFiles && j.part.Name == n.Node }) {
			jobs = append(jobs, job{part: drillreport.Part{Layer: drillreport.LayerFiles, Name: n.Node, Node: n.Node,
				Error: "nothing to restore: no file snapshot of " + n.Node + " in the store: take one with kubectl dr backup create"}})
		}
	}
	for _, c := range cfg.Checks {
		switch {
		case c.HTTP != "":
			notes = append(notes, fmt.Sprintf("not run: check %s (GET %s) needs the live platform; kubectl dr recover runs it", c.Name, c.HTTP))
		case !slices.Contains(known, c.Postgres):
			notes = append(notes, fmt.Sprintf("not run: check %s names WAL source %q, which no agent ships", c.Name, c.Postgres))
		}
	}
	return jobs, notes, nil
}

func etcdJob(p recoveryplan.Part, nodes agentclient.Nodes, allowUnsigned bool) job {
	j := job{part: drillreport.Part{Layer: drillreport.LayerEtcd, Name: p.What, Node: p.Node}}
	if p.Missing {
		return j
	}
	// The snapshot's own server if its agent answers, else the leader,
	// else any server.
	n, ok := nodes.Find(p.Node)
	if !ok || !n.HoldsDatastore() {
		n, _ = nodes.EtcdLeader()
	}
	if n == nil {
		for _, c := range nodes {
			if c.HoldsDatastore() {
				n = c
				break
			}
		}
	}
	if n == nil {
		j.part.Error = "no agent on a k3s server answered to rehearse the datastore on: " + orNone(nodeErrors(nodes))
		return j
	}
	j.node, j.part.Node = n, n.Node
	j.req = &agentv1.RunDrillPartRequest{Part: &agentv1.RunDrillPartRequest_Etcd{Etcd: &agentv1.DrillEtcd{
		Snapshot: &agentv1.SnapshotRef{Name: p.What, Node: p.Node, BackupSet: p.BackupSet, AllowUnsigned: allowUnsigned}}}}
	return j
}

func filesJob(p recoveryplan.Part, nodes agentclient.Nodes, layers nodeLayers) job {
	j := job{part: drillreport.Part{Layer: drillreport.LayerFiles, Name: p.Node, Node: p.Node}}
	if p.Missing {
		return j
	}
	req := &agentv1.DrillFiles{SnapshotId: p.SnapshotID, BackupSet: p.BackupSet}
	n, ok := nodes.Find(p.Node)
	if !ok || !n.Ready() {
		// Another node's agent restores it, as a recovery onto a new host
		// would.
		why := "no agent"
		if ok {
			why = n.Err.Error()
		}
		n = nil
		for _, c := range nodes {
			if f := layers.find(c.Node, "files", ""); c.Ready() && f != nil && f.Off == "" {
				n = c
				break
			}
		}
		if n == nil {
			j.part.Error = fmt.Sprintf("the agent on %s cannot rehearse its files (%s), and no other agent runs restic", p.Node, why)
			return j
		}
		req.Node = p.Node
	}
	j.node, j.part.Node = n, n.Node
	j.req = &agentv1.RunDrillPartRequest{Part: &agentv1.RunDrillPartRequest_Files{Files: req}}
	return j
}

func postgresJob(p recoveryplan.Part, nodes agentclient.Nodes, layers nodeLayers, cfg agentconfig.Drill, allowUnsigned bool) job {
	j := job{part: drillreport.Part{Layer: drillreport.LayerPostgres, Name: p.What, Node: p.Node}}
	if p.Missing {
		return j
	}
	node := layers.walNode(p.What)
	if node == "" {
		node = p.Node
	}
	n, ok := nodes.Find(node)
	if !ok || !n.Ready() {
		why := "no agent answers for it"
		if ok {
			why = n.Err.Error()
		}
		j.part.Node = node
		j.part.Error = fmt.Sprintf("the agent that ships WAL source %s (on %s) cannot rehearse it: %s", p.What, orNone(node), why)
		return j
	}
	req := &agentv1.DrillPostgres{Source: p.What, AllowUnsigned: allowUnsigned}
	if !p.PGTime.IsZero() {
		req.Target = timestamppb.New(p.PGTime)
	}
	for _, c := range cfg.Checks {
		if c.Query != "" && c.Postgres == p.What {
			db := c.Database
			if db == "" {
				db = "postgres"
			}
			req.Checks = append(req.Checks, &agentv1.DrillCheck{Name: c.Name, Database: db, Query: c.Query, Expect: c.Expect, TimeoutMs: c.CheckTimeout().Milliseconds()})
		}
	}
	j.node, j.part.Node = n, n.Node
	j.req = &agentv1.RunDrillPartRequest{Part: &agentv1.RunDrillPartRequest_Postgres{Postgres: req}}
	// The base backup is a restic snapshot: any agent with restic can
	// restore it, should this one have no PostgreSQL to replay it in.
	for _, c := range nodes {
		if f := layers.find(c.Node, "files", ""); c != n && c.Ready() && f != nil && f.Off == "" {
			j.others = append(j.others, c)
		}
	}
	return j
}

func bucketJob(p recoveryplan.Part, nodes agentclient.Nodes) job {
	j := job{part: drillreport.Part{Layer: drillreport.LayerBucket, Name: p.What}}
	if p.Missing {
		return j
	}
	n, _ := nodes.EtcdLeader()
	if n == nil {
		for _, c := range nodes {
			if c.Ready() {
				n = c
				break
			}
		}
	}
	if n == nil {
		j.part.Error = "no agent answered to rehearse the bucket on"
		return j
	}
	req := &agentv1.DrillBucket{Source: p.What}
	if !p.BucketTo.IsZero() {
		req.At = timestamppb.New(p.BucketTo)
	}
	j.node, j.part.Node = n, n.Node
	j.req = &agentv1.RunDrillPartRequest{Part: &agentv1.RunDrillPartRequest_Bucket{Bucket: req}}
	return j
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
