package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
)

// fakeDrillAgent stands in for an agent's drill engine (its restores need
// etcd, restic and PostgreSQL: the lab's e2e drill test runs the real
// ones): it answers Info like a server with restic and RunDrillPart with
// a result built from the request, recording the requests. vanish makes
// it drop off the network in the middle of a part.
type fakeDrillAgent struct {
	agentv1.UnimplementedAgentServiceServer
	agentv1.UnimplementedDrillServiceServer
	node    string
	leader  bool
	files   string // newest restic snapshot's short id; "" for files off
	wal     []string
	corrupt string // a problem the etcd part reports
	vanish  func()
	noPG    bool // refuses postgres parts as a node without PostgreSQL does

	mu   sync.Mutex
	reqs []*agentv1.RunDrillPartRequest
}

func (a *fakeDrillAgent) Info(_ context.Context, req *agentv1.InfoRequest) (*agentv1.InfoResponse, error) {
	info := &agentv1.InfoResponse{NodeName: a.node, AgentVersion: "fake", ResticVersion: "restic fake", Datastore: "etcd",
		Roles: []agentv1.NodeRole{agentv1.NodeRole_NODE_ROLE_SERVER, agentv1.NodeRole_NODE_ROLE_ETCD},
		Etcd:  &agentv1.EtcdMemberHealth{Member: true, Leader: a.leader}}
	if req.Layers {
		files := &agentv1.LayerStatus{Layer: "files", Off: "no restic password"}
		if a.files != "" {
			files = &agentv1.LayerStatus{Layer: "files", NewestName: a.files, Newest: timestamppb.New(time.Now().Add(-time.Minute))}
		}
		info.Layers = append(info.Layers, files)
		for _, w := range a.wal {
			info.Layers = append(info.Layers, &agentv1.LayerStatus{Layer: "wal", Name: w})
		}
	}
	return info, nil
}

func (a *fakeDrillAgent) RunDrillPart(req *agentv1.RunDrillPartRequest, stream agentv1.DrillService_RunDrillPartServer) error {
	a.mu.Lock()
	a.reqs = append(a.reqs, req)
	a.mu.Unlock()
	if _, pg := req.Part.(*agentv1.RunDrillPartRequest_Postgres); pg && a.noPG {
		st, _ := status.New(codes.FailedPrecondition, "node "+a.node+" cannot replay base backup b1 of pg-main: no PostgreSQL 15 server binary on this node").
			WithDetails(&errdetails.ErrorInfo{Reason: agentv1.ReasonNoPostgres, Domain: agentv1.ErrorDomain})
		return st.Err()
	}
	if err := stream.Send(&agentv1.RunDrillPartResponse{Event: &agentv1.RunDrillPartResponse_Progress{Progress: &agentv1.Progress{Phase: "restore", Percent: 50}}}); err != nil {
		return err
	}
	if a.vanish != nil {
		go a.vanish()
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	start := time.Now().Add(-3 * time.Second)
	res := &agentv1.DrillPartResult{Node: a.node, Ok: true, RecoveryPoint: timestamppb.New(time.Now().Add(-2 * time.Minute)),
		Steps: []*agentv1.DrillStep{
			{Name: "fetch", Start: timestamppb.New(start), End: timestamppb.New(start.Add(time.Second)), Ok: true, Restore: true},
			{Name: "restore", Start: timestamppb.New(start.Add(time.Second)), End: timestamppb.New(start.Add(2 * time.Second)), Ok: true, Restore: true},
			{Name: "count", Start: timestamppb.New(start.Add(2 * time.Second)), End: timestamppb.New(start.Add(3 * time.Second)), Ok: true},
		}}
	switch p := req.Part.(type) {
	case *agentv1.RunDrillPartRequest_Etcd:
		res.Layer, res.Name = "etcd", p.Etcd.Snapshot.Name
		res.Facts = map[string]string{"sha256": "abc123", "revision": "42"}
		res.Counts = map[string]int64{"core/v1 configmaps": 7}
		if a.corrupt != "" {
			res.Ok, res.Problems = false, []string{a.corrupt}
			res.Steps[0].Ok, res.Steps[0].Error = false, a.corrupt
		}
	case *agentv1.RunDrillPartRequest_Files:
		res.Layer, res.Name = "files", a.node
		res.FilesRestored, res.BytesRestored = 12, 4096
	case *agentv1.RunDrillPartRequest_Postgres:
		res.Layer, res.Name = "postgres", p.Postgres.Source
		for _, c := range p.Postgres.Checks {
			res.Checks = append(res.Checks, &agentv1.DrillCheckResult{Name: c.Name, Query: c.Query, Expect: c.Expect, Got: c.Expect, Ok: true, DurationMs: 500})
		}
	}
	return stream.Send(&agentv1.RunDrillPartResponse{Event: &agentv1.RunDrillPartResponse_Result{Result: res}})
}

func (a *fakeDrillAgent) requests() []*agentv1.RunDrillPartRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*agentv1.RunDrillPartRequest(nil), a.reqs...)
}

// drillAgent serves a fake drill agent for its node; the returned stop
// takes it off the network (as a node that dies does).
func (e *env) drillAgent(a *fakeDrillAgent) (stop func()) {
	e.t.Helper()
	var gs *grpc.Server
	e.serve(a.node, func(opts ...grpc.ServerOption) *grpc.Server {
		gs = grpc.NewServer(opts...)
		agentv1.RegisterAgentServiceServer(gs, a)
		agentv1.RegisterDrillServiceServer(gs, a)
		return gs
	})
	return func() {
		e.mu.Lock()
		delete(e.listeners, address(a.node))
		e.mu.Unlock()
		gs.Stop()
	}
}

func (e *env) drillReport(id string) *drillreport.Report {
	e.t.Helper()
	r, err := drillreport.Read(context.Background(), e.store, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func drillID(t *testing.T, stdout string) string {
	t.Helper()
	for _, f := range strings.Fields(stdout) {
		if strings.HasPrefix(f, "drill-") {
			return f
		}
	}
	t.Fatalf("no drill id in the output:\n%s", stdout)
	return ""
}

// The parts go to the right agents (the snapshot's own server for etcd,
// each node's own agent for its files), run in parallel, and the report
// is printed, stored and listed; show -o html is its page.
func TestDrillFakeAgentsPassAndKeepTheReport(t *testing.T) {
	e := newEnv(t)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "snap-server-2-1", Node: "server-2", Created: time.Now().Add(-2 * time.Minute).UTC(), Uploaded: true, StoreKey: "etcd/server-2/snap-server-2-1.db.zst", Compression: "zstd"})
	s1 := &fakeDrillAgent{node: "server-1", leader: true, files: "aaaa1111"}
	s2 := &fakeDrillAgent{node: "server-2", files: "bbbb2222"}
	e.drillAgent(s1)
	e.drillAgent(s2)

	r := e.run("drill")
	if r.code != 0 {
		t.Fatalf("drill: %s", r)
	}
	for _, want := range []string{"etcd/snap-server-2-1", "files/server-1", "files/server-2", "PASSED", "tester (kubeconfig)", "12 files"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "Report saved as drills/drill-") {
		t.Errorf("stderr does not say where the report is:\n%s", r.stderr)
	}
	id := drillID(t, r.stdout)
	// etcd goes to the snapshot's own server; each node rehearses its own
	// files.
	var s1Layers, s2Layers []string
	for _, q := range s1.requests() {
		s1Layers = append(s1Layers, partLayer(q))
		if q.DrillId != id {
			t.Errorf("request for drill %q, want %s", q.DrillId, id)
		}
	}
	for _, q := range s2.requests() {
		s2Layers = append(s2Layers, partLayer(q))
		if f := q.GetFiles(); f != nil && f.SnapshotId != "bbbb2222" {
			t.Errorf("server-2's files part asks for snapshot %q, want its newest bbbb2222", f.SnapshotId)
		}
	}
	if strings.Join(s1Layers, ",") != "files" || len(s2Layers) != 2 {
		t.Errorf("server-1 got %v, server-2 got %v; want files, and etcd+files", s1Layers, s2Layers)
	}

	rep := e.drillReport(id)
	if !rep.Passed || rep.RTO.Seconds != 2 || len(rep.RPO) != 3 || rep.Runner != "tester (kubeconfig)" || rep.Backup != "latest" {
		t.Errorf("stored report: passed %v, RTO %v, %d RPOs, runner %q, backup %q", rep.Passed, rep.RTO.Seconds, len(rep.RPO), rep.Runner, rep.Backup)
	}
	if rep.Targets.RTO != "30m0s" || rep.Targets.RPO != "5m0s" {
		t.Errorf("targets %+v, want the defaults", rep.Targets)
	}

	ls := e.run("drill", "ls")
	if ls.code != 0 || !strings.Contains(ls.stdout, id) || !strings.Contains(ls.stdout, "PASSED") || !strings.Contains(ls.stdout, "3/3 ok") {
		t.Errorf("drill ls: %s", ls)
	}
	show := e.run("drill", "show", id, "-o", "json")
	var shown struct {
		Kind string `json:"kind"`
		RTO  struct {
			Seconds float64 `json:"seconds"`
		} `json:"rto"`
		RPO []struct {
			Seconds float64 `json:"seconds"`
		} `json:"rpo"`
	}
	if err := json.Unmarshal([]byte(show.stdout), &shown); err != nil || shown.Kind != "DrillReport" || shown.RTO.Seconds != 2 || len(shown.RPO) != 3 {
		t.Errorf("drill show -o json (%v): %s", err, show)
	}
	// Signed by who ran it (kubectl dr's client certificate); changed
	// after, it is refused.
	if !strings.Contains(show.stdout, `"signedBy": "kubectl dr (`) || strings.Contains(show.stderr, "not signed") {
		t.Errorf("drill show -o json: want it signed by kubectl dr: %s", show)
	}
	reportKey := drillreport.JSONKey(id)
	rc, err := e.store.Get(context.Background(), reportKey)
	if err != nil {
		t.Fatal(err)
	}
	saved, _ := io.ReadAll(rc)
	rc.Close()
	forged := bytes.Replace(saved, []byte(`"passed": true`), []byte(`"passed": false`), 1)
	if _, err := e.store.Put(context.Background(), reportKey, bytes.NewReader(forged), int64(len(forged))); err != nil {
		t.Fatal(err)
	}
	if r := e.run("drill", "show", id); r.code != 1 || !strings.Contains(r.stderr, "changed after it was signed") {
		t.Errorf("drill show of a changed report: want exit 1, changed after it was signed\n%s", r)
	}
	if _, err := e.store.Put(context.Background(), reportKey, bytes.NewReader(saved), int64(len(saved))); err != nil {
		t.Fatal(err)
	}
	page := e.run("drill", "show", id, "-o", "html")
	if page.code != 0 || !strings.HasPrefix(page.stdout, "<!DOCTYPE html>") || !strings.Contains(page.stdout, `<svg id="timeline"`) {
		t.Errorf("drill show -o html: exit %d, %.200s", page.code, page.stdout)
	}

	// A missed target fails the drill (exit 1) and says which.
	r = e.run("drill", "--rpo-target", "1m")
	if r.code != 1 || !strings.Contains(r.stderr, "RPO of etcd/snap-server-2-1 is 2m0s") || !strings.Contains(r.stderr, "over the target 1m0s") {
		t.Errorf("drill --rpo-target 1m: %s", r)
	}
	if second := drillID(t, r.stdout); second == id {
		t.Errorf("the second drill reused the id %s", id)
	}
}

func partLayer(q *agentv1.RunDrillPartRequest) string {
	switch q.Part.(type) {
	case *agentv1.RunDrillPartRequest_Etcd:
		return "etcd"
	case *agentv1.RunDrillPartRequest_Files:
		return "files"
	case *agentv1.RunDrillPartRequest_Postgres:
		return "postgres"
	}
	return "bucket"
}

// A corrupt snapshot fails the drill naming the object; an agent that
// vanishes mid-part fails its part with that reason while the other
// parts finish, and the report is still saved and says so.
func TestDrillFakeAgentFailuresAreReportedAndSaved(t *testing.T) {
	e := newEnv(t)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "snap-server-1-1", Node: "server-1", Created: time.Now().Add(-time.Minute).UTC(), Uploaded: true, StoreKey: "etcd/server-1/snap-server-1-1.db.zst", Compression: "zstd"})
	const bad = "etcd/server-1/snap-server-1-1.db.zst: sha256 0000, metadata says 1111"
	s1 := &fakeDrillAgent{node: "server-1", leader: true, files: "aaaa1111", corrupt: bad}
	s2 := &fakeDrillAgent{node: "server-2", files: "bbbb2222"}
	e.drillAgent(s1)
	stop := e.drillAgent(s2)
	s2.vanish = stop

	r := e.run("drill")
	if r.code != 1 {
		t.Fatalf("drill: %s", r)
	}
	for _, want := range []string{bad, "files/server-2 on server-2: the agent on server-2 stopped answering before the part finished"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	rep := e.drillReport(drillID(t, r.stdout))
	if rep.Passed || rep.RTO.Complete {
		t.Errorf("stored report passed %v, RTO complete %v", rep.Passed, rep.RTO.Complete)
	}
	byKey := map[string]drillreport.Part{}
	for _, p := range rep.Parts {
		byKey[p.Key()] = p
	}
	if p := byKey["files/server-1"]; !p.OK || p.FilesRestored != 12 {
		t.Errorf("server-1's files part did not finish: %+v", p)
	}
	if p := byKey["files/server-2"]; p.OK || !strings.Contains(p.Error, "stopped answering") {
		t.Errorf("server-2's files part: %+v", p)
	}
	if p := byKey["etcd/snap-server-1-1"]; p.OK || len(p.Problems) != 1 || p.Problems[0] != bad {
		t.Errorf("etcd part: %+v", p)
	}
}

func TestDrillBadInput(t *testing.T) {
	e := newEnv(t)
	e.writeSnapshot(&dbsnap.Snapshot{Name: "snap-server-1-1", Node: "server-1", Created: time.Now().UTC(), Uploaded: true, StoreKey: "etcd/server-1/snap-server-1-1.db.zst", Compression: "zstd"})
	if r := e.run("drill"); r.code != 1 || !strings.Contains(r.stderr, "no agents found") {
		t.Errorf("drill without agents: %s", r)
	}
	e.drillAgent(&fakeDrillAgent{node: "server-1", leader: true, wal: []string{"pg-main"}})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"drill", "--pg", "pg-nope"}, 2, "--pg pg-nope: no WAL source of that name (known: pg-main;"},
		{[]string{"drill", "--backup", "backup-nope"}, 2, "--backup backup-nope: backup set not found"},
		{[]string{"drill", "--backup", "b1", "--latest"}, 2, "give one"},
		{[]string{"drill", "--rto-target", "soon"}, 2, `--rto-target "soon": want a positive duration`},
		{[]string{"drill", "show", "drill-20200101-000000"}, 1, "no drills/drill-20200101-000000.json"},
		{[]string{"drill", "show", "x"}, 2, "invalid drill id"},
		// A WAL source an agent ships with nothing in the store cannot be
		// recovered: the drill fails and says what to do.
		{[]string{"drill", "--pg", "pg-main"}, 1, "postgres/pg-main on server-1: nothing to restore: no base backup of pg-main in the store: take one with kubectl dr pg basebackup pg-main"},
	} {
		r := e.run(tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: want exit %d and %q, got %s", tc.args, tc.code, tc.want, r)
		}
	}
}

// kubectl dr status has a drills row: the newest drill, how it ended, its
// age.
func TestStatusShowsTheLastDrill(t *testing.T) {
	e := newEnv(t)
	e.agent("server-1", nil)
	if r := e.run("status"); strings.Contains(r.stdout, "drills") {
		t.Errorf("a drills row without any drill:\n%s", r)
	}
	old := &drillreport.Report{ID: "drill-20261130-120000", Started: time.Now().Add(-50 * time.Hour), Passed: true}
	newer := &drillreport.Report{ID: "drill-20261201-120000", Started: time.Now().Add(-26 * time.Hour), Reasons: []string{"RTO 31m0s is over the target 30m0s"}}
	for _, rep := range []*drillreport.Report{old, newer} {
		if err := drillreport.Write(context.Background(), e.store, rep, []byte("<html></html>"), nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run("status", "-o", "wide")
	var row []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "cluster" {
			row = f
		}
	}
	if len(row) < 8 || row[1] != "drills" || row[2] != "failed" || row[3] != "26h" || !strings.Contains(strings.Join(row, " "), "26h ago: RTO 31m0s is over the target 30m0s drill-20261201-120000") {
		t.Errorf("drills row %q:\n%s", row, r)
	}
}

// The WAL source's own agent has no PostgreSQL to replay in (the
// DaemonSet's image has none): it refuses with NO_POSTGRES before
// restoring anything, the next agent with restic rehearses the part, and
// the report says so.
func TestDrillFakeAgentPostgresGoesWhereItCanReplay(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	e.writeSnapshot(&dbsnap.Snapshot{Name: "snap-server-1-1", Node: "server-1", Created: now.Add(-time.Minute), Uploaded: true, StoreKey: "etcd/server-1/snap-server-1-1.db.zst", Compression: "zstd"})
	if err := basebackup.Write(context.Background(), e.store, &basebackup.BaseBackup{ID: "b1", Source: "pg-main", Node: "server-1", PGVersion: "15", Timeline: 1,
		StopSegment: "000000010000000000000002", StartTime: now.Add(-time.Hour), StopTime: now.Add(-time.Hour)}, e.signer("server-1")); err != nil {
		t.Fatal(err)
	}
	s1 := &fakeDrillAgent{node: "server-1", leader: true, files: "aaaa1111", wal: []string{"pg-main"}, noPG: true}
	s2 := &fakeDrillAgent{node: "server-2", files: "bbbb2222"}
	e.drillAgent(s1)
	e.drillAgent(s2)
	r := e.run("drill", "--pg", "pg-main")
	if r.code != 0 {
		t.Fatalf("drill: %s", r)
	}
	var pgOn []string
	for _, a := range []*fakeDrillAgent{s1, s2} {
		for _, q := range a.requests() {
			if q.GetPostgres() != nil {
				pgOn = append(pgOn, a.node)
			}
		}
	}
	if strings.Join(pgOn, ",") != "server-1,server-2" {
		t.Errorf("the postgres part was asked of %v; want server-1, then server-2", pgOn)
	}
	rep := e.drillReport(drillID(t, r.stdout))
	var pg drillreport.Part
	for _, p := range rep.Parts {
		if p.Layer == "postgres" {
			pg = p
		}
	}
	if !pg.OK || pg.Node != "server-2" {
		t.Errorf("postgres part: %+v", pg)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "postgres/pg-main: node server-1 cannot replay base backup b1 of pg-main: no PostgreSQL 15 server binary on this node; rehearsed on server-2 instead") {
		t.Errorf("notes %q", rep.Notes)
	}
}

// --backup rehearses the set's own parts: its snapshot and its restic
// snapshots, not the newest ones.
func TestDrillFakeAgentsBackupSet(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	e.writeSnapshot(&dbsnap.Snapshot{Name: "set-snap", Node: "server-1", Created: now.Add(-time.Hour), Uploaded: true, StoreKey: "etcd/server-1/set-snap.db.zst", Compression: "zstd", BackupSet: "b1"})
	e.writeSnapshot(&dbsnap.Snapshot{Name: "newer-snap", Node: "server-1", Created: now.Add(-time.Minute), Uploaded: true, StoreKey: "etcd/server-1/newer-snap.db.zst", Compression: "zstd"})
	e.writeSet(&backupset.Set{ID: "b1", Started: now.Add(-time.Hour), Finished: now.Add(-59 * time.Minute), Phase: backupset.Completed,
		Etcd: &backupset.EtcdPart{Node: "server-1", Snapshot: "set-snap"}, Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "cccc3333dddd"}}})
	s1 := &fakeDrillAgent{node: "server-1", leader: true, files: "aaaa1111"}
	e.drillAgent(s1)
	r := e.run("drill", "--backup", "b1", "--rpo-target", "3h")
	if r.code != 0 {
		t.Fatalf("drill --backup b1: %s", r)
	}
	for _, q := range s1.requests() {
		if et := q.GetEtcd(); et != nil && et.Snapshot.Name != "set-snap" {
			t.Errorf("etcd part asks for %q, want the set's set-snap", et.Snapshot.Name)
		}
		if f := q.GetFiles(); f != nil && (f.SnapshotId != "cccc3333dddd" || f.BackupSet != "b1") {
			t.Errorf("files part asks for %q of %q, want the set's cccc3333dddd of b1", f.SnapshotId, f.BackupSet)
		}
	}
	if rep := e.drillReport(drillID(t, r.stdout)); rep.Backup != "b1" || len(rep.Parts) != 2 || rep.Targets.Source != "flags" {
		t.Errorf("report: backup %q, %d parts, targets %+v", rep.Backup, len(rep.Parts), rep.Targets)
	}
}
