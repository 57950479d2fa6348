package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// The agents' drill parts are asked for directly, over the agents' mTLS
// with the install's client certificate (the plugin's kubectl dr drill is
// tested on its own): these tests check what each layer's rehearsal finds.

// dialAgent is a gRPC connection to the agent at addr with the lab's
// client certificate.
func dialAgent(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	files := mtls.Files{CA: labEnv(t, "KUBECTL_DR_CA"), Cert: labEnv(t, "KUBECTL_DR_CERT"), Key: labEnv(t, "KUBECTL_DR_KEY")}
	tlsCfg, err := mtls.ClientConfig(files, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// drillPart runs one part on the agent at addr and returns its result and
// the phases its progress named; onPhase sees each phase as it comes.
func drillPart(t *testing.T, addr string, req *agentv1.RunDrillPartRequest, onPhase func(string)) (*agentv1.DrillPartResult, []string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stream, err := agentv1.NewDrillServiceClient(dialAgent(t, addr)).RunDrillPart(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var phases []string
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil, phases, err
		}
		if p := m.GetProgress(); p != nil {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
				if onPhase != nil {
					onPhase(p.Phase)
				}
			}
		}
		if r := m.GetResult(); r != nil {
			return r, phases, nil
		}
	}
}

func drillID(t *testing.T) string {
	return fmt.Sprintf("drill-%s-%d", time.Now().UTC().Format("20060102-150405"), time.Now().UnixNano()%1000000)
}

func stepsOf(r *agentv1.DrillPartResult) string {
	var b strings.Builder
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "  %s ok=%v restore=%v %s %s\n", s.Name, s.Ok, s.Restore, s.Detail, s.Error)
	}
	return b.String()
}

func agentStateDir(t *testing.T, node string) string {
	t.Helper()
	cfg, err := theLab.AgentConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.StateDir
}

// noScratch fails the test when the drill left its directory on node.
func noScratch(t *testing.T, node, id string) {
	t.Helper()
	dir := filepath.Join(agentStateDir(t, node), "drill", id)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		left, _ := os.ReadDir(dir)
		t.Errorf("drill %s left %s on %s: %v %v", id, dir, node, left, err)
	}
}

// The etcd part on server-2 restores the leader's snapshot from the store
// into a scratch member on loopback: the revision it serves is the
// snapshot's and it serves as many objects per resource type as the file
// holds. With a byte of the stored object changed, the part fails naming
// the object's key, and leaves nothing behind either way.
func TestDrillEtcdPart(t *testing.T) {
	ns := "drill-etcd-e2e"
	labtest.Kubectl(t, theLab, "create", "namespace", ns)
	t.Cleanup(func() { labtest.Kubectl(t, theLab, "delete", "namespace", ns, "--wait=false") })
	for i := range 4 {
		labtest.Kubectl(t, theLab, "-n", ns, "create", "configmap", fmt.Sprintf("cm-%d", i), "--from-literal=k=v")
	}
	snap := labtest.SaveSnapshot(t, theLab, "drill-e2e")
	addr := theLab.AgentAddr("server-2")
	id := drillID(t)
	res, phases, err := drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id,
		Part: &agentv1.RunDrillPartRequest_Etcd{Etcd: &agentv1.DrillEtcd{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ok {
		t.Fatalf("etcd part failed: %q\n%s", res.Problems, stepsOf(res))
	}
	if res.Node != "server-2" || res.Layer != "etcd" || res.Name != snap.Name {
		t.Errorf("result names %s/%s/%s", res.Node, res.Layer, res.Name)
	}
	if got := res.Facts["servedRevision"]; got != strconv.FormatInt(snap.Revision, 10) {
		t.Errorf("scratch etcd served revision %s, the snapshot's is %d", got, snap.Revision)
	}
	if n := res.Counts["served:configmaps"]; n < 4 || n != res.Counts["snapshot:configmaps"] {
		t.Errorf("configmaps: served %d, in the file %d; want equal and at least the test's 4", n, res.Counts["snapshot:configmaps"])
	}
	if n := res.Counts["served:namespaces"]; n == 0 || n != res.Counts["snapshot:namespaces"] {
		t.Errorf("namespaces: served %d, in the file %d", n, res.Counts["snapshot:namespaces"])
	}
	if got := res.RecoveryPoint.AsTime(); !got.Equal(snap.Created) {
		t.Errorf("recovery point %s, want the snapshot's time %s", got, snap.Created)
	}
	if got := strings.Join(phases, ","); !strings.HasPrefix(got, "fetch,verify,restore,start,health,count,compare") {
		t.Errorf("progress phases %s", got)
	}
	noScratch(t, "server-2", id)

	key := "lab/" + theLab.State.ClusterID + "/" + snap.StoreKey
	stored := storeObject(t, key)
	t.Cleanup(func() { putStoreObject(t, key, stored) })
	bad := bytes.Clone(stored)
	bad[len(bad)/2] ^= 0x20
	putStoreObject(t, key, bad)
	id = drillID(t)
	res, _, err = drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id,
		Part: &agentv1.RunDrillPartRequest_Etcd{Etcd: &agentv1.DrillEtcd{Snapshot: &agentv1.SnapshotRef{Name: snap.Name}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ok || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], snap.StoreKey) || !strings.Contains(res.Problems[0], "checksum mismatch") {
		t.Fatalf("corrupt stored object: ok %v, problems %q; want a checksum mismatch naming %s\n%s", res.Ok, res.Problems, snap.StoreKey, stepsOf(res))
	}
	noScratch(t, "server-2", id)
}

// The files part restores server-2's snapshot of a backup set into
// scratch, restic reading every file back: the kept scratch holds the
// same bytes as the backed-up directory.
func TestDrillFilesPart(t *testing.T) {
	dir := filepath.Join(theLab.DataDir("server-2"), "storage", "drill-files")
	writeTree(t, dir, 300, 1, 424242)
	t.Cleanup(func() { os.RemoveAll(dir) })
	want := hashTree(t, dir)
	if r := kubectlDR(t, nil, "backup", "create", "drill-files-e2e", "--etcd=false", "--node", "server-2"); r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	id := drillID(t)
	res, _, err := drillPart(t, theLab.AgentAddr("server-2"), &agentv1.RunDrillPartRequest{DrillId: id, Keep: true,
		Part: &agentv1.RunDrillPartRequest_Files{Files: &agentv1.DrillFiles{BackupSet: "drill-files-e2e", ReadDataSubset: "10%"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ScratchDir != "" {
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.ScratchDir)) })
	}
	if !res.Ok {
		t.Fatalf("files part failed: %q\n%s", res.Problems, stepsOf(res))
	}
	got := hashTree(t, filepath.Join(res.ScratchDir, "files", dir))
	for p, sum := range want {
		rel, _ := filepath.Rel(dir, p)
		if g := got[filepath.Join(res.ScratchDir, "files", dir, rel)]; g != sum {
			t.Errorf("%s: restored sha256 %q, backed up %s", rel, g, sum)
		}
	}
	if res.FilesRestored < int64(len(want)) || res.Counts["files"] != res.FilesRestored {
		t.Errorf("files restored %d (count %d), want at least the test's %d", res.FilesRestored, res.Counts["files"], len(want))
	}
	if res.Facts["resticVersion"] == "" || res.Facts["snapshot"] == "" || res.RecoveryPoint == nil {
		t.Errorf("facts %v, recovery point %v", res.Facts, res.RecoveryPoint)
	}
	// The RTO counts the restore a real recovery runs, not the drill's
	// read-back of every file.
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, fmt.Sprintf("%s(restore=%v)", s.Name, s.Restore))
	}
	if got := strings.Join(steps, ","); got != "restore(restore=true),verify(restore=false),read-data(restore=false),cleanup(restore=false)" {
		t.Errorf("steps %s", got)
	}
}

// A pack missing from a node's repository (its own repository, under a
// cluster id of its own, so the lab's stays whole) fails the files part,
// naming the pack.
func TestDrillFilesPartMissingPack(t *testing.T) {
	clusterID := fmt.Sprintf("drill-pack-%d", time.Now().UnixNano())
	var paths []string
	env := extraFilesAgent(t, "drill-pack", func(c *agentconfig.Config) {
		c.ClusterID = clusterID
		paths = c.Restic.Paths
	})
	writeTree(t, paths[0], 20, 1, 7)
	addr := strings.TrimPrefix(env[0], "KUBECTL_DR_AGENTS=agent-1=")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(dialAgent(t, addr)).BackupFiles(ctx, &agentv1.BackupFilesRequest{BackupSet: "pack-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("backup files: %v", err)
		}
	}
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "lab/" + clusterID + "/restic/data/"
	var largest minio.ObjectInfo
	for obj := range mc.ListObjects(ctx, theLab.State.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if obj.Size > largest.Size {
			largest = obj
		}
	}
	if largest.Key == "" {
		t.Fatalf("no pack under %s", prefix)
	}
	t.Cleanup(func() {
		for obj := range mc.ListObjects(context.Background(), theLab.State.Bucket, minio.ListObjectsOptions{Prefix: "lab/" + clusterID + "/", Recursive: true}) {
			_ = mc.RemoveObject(context.Background(), theLab.State.Bucket, obj.Key, minio.RemoveObjectOptions{})
		}
	})
	if err := mc.RemoveObject(ctx, theLab.State.Bucket, largest.Key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	pack := filepath.Base(largest.Key)
	id := drillID(t)
	res, _, err := drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id,
		Part: &agentv1.RunDrillPartRequest_Files{Files: &agentv1.DrillFiles{ReadDataSubset: "100%"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("problems: %q", res.Problems)
	// Both the restore and restic check name it (restic shortens pack
	// ids to 10 digits in its errors).
	if res.Ok || len(res.Problems) != 2 || !strings.Contains(res.Problems[0], pack[:10]) || !strings.Contains(res.Problems[1], pack) {
		t.Fatalf("missing pack %s: ok %v, problems %q; want the restore and the check failing, naming it\n%s", pack, res.Ok, res.Problems, stepsOf(res))
	}
}

// archivedRows makes a table of n rows in the lab's database, then has every
// segment up to now shipped.
func archivedRows(t *testing.T, table string, n int) string {
	t.Helper()
	psql(t, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s AS SELECT g AS v FROM generate_series(1, %d) g", table, table, n))
	last := psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	deadline := time.Now().Add(60 * time.Second)
	for walStatus(t).Newest < last {
		if time.Now().After(deadline) {
			t.Fatalf("WAL up to %s not archived in 60s", last)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return last
}

func pgPart(source string, checks ...*agentv1.DrillCheck) *agentv1.RunDrillPartRequest_Postgres {
	return &agentv1.RunDrillPartRequest_Postgres{Postgres: &agentv1.DrillPostgres{Source: source, Checks: checks}}
}

// The postgres part, while the database takes writes, restores the newest
// base backup on server-2, replays the archived WAL in a scratch
// PostgreSQL and runs the checks there: a check on a table written before
// passes with its row count, a wrong expectation fails the part with what
// the query returned. A segment removed from the store is named as the
// gap.
func TestDrillPostgresPart(t *testing.T) {
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s", r.code, r.stderr)
	}
	psql(t, "DROP TABLE IF EXISTS drill_e2e_load; CREATE TABLE drill_e2e_load (v int)")
	archivedRows(t, "drill_e2e", 1234)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		bin, err := lab.PGBin("psql")
		if err != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command(bin, "-X", "-q", "-c", "INSERT INTO drill_e2e_load SELECT generate_series(1, 1000)")
			cmd.Env = append(os.Environ(), theLab.Env()...)
			_ = cmd.Run()
		}
	}()
	defer func() { close(stop); <-done }()

	addr := theLab.AgentAddr("server-2")
	id := drillID(t)
	res, phases, err := drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id, Part: pgPart(lab.WALSource,
		&agentv1.DrillCheck{Name: "rows", Database: "postgres", Query: "select count(*) from drill_e2e", Expect: "1234"},
		&agentv1.DrillCheck{Name: "exists", Query: "select to_regclass('public.drill_e2e') is not null", Expect: "t"},
	)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ok {
		t.Fatalf("postgres part failed: %q\n%s", res.Problems, stepsOf(res))
	}
	if len(res.Checks) != 2 || !res.Checks[0].Ok || res.Checks[0].Got != "1234" || !res.Checks[1].Ok || res.Checks[1].Got != "t" {
		t.Errorf("checks %v", res.Checks)
	}
	if res.Counts["public.drill_e2e"] != 1234 {
		t.Errorf("row counts %v", res.Counts)
	}
	if res.RecoveryPoint == nil || res.RecoveryPoint.AsTime().IsZero() {
		t.Errorf("no recovery point")
	}
	if got := strings.Join(phases, ","); !strings.HasPrefix(got, "wal-continuity,restore,replay,check") {
		t.Errorf("progress phases %s", got)
	}
	noScratch(t, "server-2", id)
	if out := pgProcessesOn(t, filepath.Join(agentStateDir(t, "server-2"), "drill")); out != "" {
		t.Errorf("a scratch postgres still runs: %s", out)
	}

	res, _, err = drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: drillID(t), Part: pgPart(lab.WALSource,
		&agentv1.DrillCheck{Name: "rows", Query: "select count(*) from drill_e2e", Expect: "99"})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ok || len(res.Checks) != 1 || res.Checks[0].Got != "1234" || !strings.Contains(strings.Join(res.Problems, "\n"), `rows returned "1234", want "99"`) {
		t.Errorf("wrong expectation: ok %v, checks %v, problems %q", res.Ok, res.Checks, res.Problems)
	}

	// A segment after the base backup's first one, gone from the store,
	// with a later one archived: a gap, not the archive's end.
	first := res.Facts["firstSegment"]
	newest := res.Facts["newestSegment"]
	if first == "" || newest <= first {
		t.Fatalf("facts %v: want a first and a later newest segment", res.Facts)
	}
	missing := nextSegment(first)
	for walStatus(t).Newest <= missing {
		archivedRows(t, "drill_e2e_after", 10)
	}
	key := "lab/" + theLab.State.ClusterID + "/" + walobj.Key(lab.WALSource, missing)
	saved := storeObject(t, key)
	mc, err := theLab.MinIOClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { putStoreObject(t, key, saved) })
	if err := mc.RemoveObject(context.Background(), theLab.State.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	id = drillID(t)
	res, _, err = drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id, Part: pgPart(lab.WALSource)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ok || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "segment "+missing+" is missing") {
		t.Errorf("WAL gap: ok %v, problems %q; want the gap at %s named\n%s", res.Ok, res.Problems, missing, stepsOf(res))
	}
	noScratch(t, "server-2", id)
}

func nextSegment(name string) string {
	no, _ := strconv.ParseUint(name[16:24], 16, 32)
	log, _ := strconv.ParseUint(name[8:16], 16, 32)
	no++
	if no == 0x100000000/walobj.DefaultSegmentSize {
		no, log = 0, log+1
	}
	return fmt.Sprintf("%s%08X%08X", name[:8], log, no)
}

// pgProcessesOn lists the postgres processes whose data dir is under dir.
func pgProcessesOn(t *testing.T, dir string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if filepath.Base(args[0]) != "postgres" {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-D" && strings.HasPrefix(args[i+1], dir) {
				out = append(out, filepath.Base(filepath.Dir(p))+" "+strings.Join(args, " "))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// An agent SIGKILLed while its postgres part's scratch PostgreSQL runs
// (a check in it still sleeping) leaves that postgres behind; started
// again, the agent stops it and removes the scratch before it serves.
func TestDrillPostgresPartAgentKilled(t *testing.T) {
	if r := kubectlDR(t, nil, "pg", "basebackup", lab.WALSource); r.code != 0 {
		t.Fatalf("pg basebackup: exit %d\n%s", r.code, r.stderr)
	}
	addr := theLab.AgentAddr("server-2")
	id := drillID(t)
	checking := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		res, _, err := drillPart(t, addr, &agentv1.RunDrillPartRequest{DrillId: id, Part: pgPart(lab.WALSource,
			&agentv1.DrillCheck{Name: "slow", Query: "select pg_sleep(600)", Expect: "", TimeoutMs: 600000})}, func(phase string) {
			if phase == "check" {
				close(checking)
			}
		})
		if err == nil {
			err = fmt.Errorf("result ok=%v, problems %q\n%s", res.Ok, res.Problems, stepsOf(res))
		}
		errc <- err
	}()
	select {
	case <-checking:
	case err := <-errc:
		t.Fatalf("the part ended before its check ran: %v", err)
	}
	scratch := filepath.Join(agentStateDir(t, "server-2"), "drill", id)
	// Whatever happens, no scratch postgres outlives the test.
	t.Cleanup(func() {
		for _, line := range strings.Split(pgProcessesOn(t, scratch), "\n") {
			if pid, err := strconv.Atoi(strings.Fields(line + " x")[0]); err == nil {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
	})
	if pgProcessesOn(t, scratch) == "" {
		t.Fatal("no scratch postgres runs while the check sleeps")
	}
	if running, err := theLab.KillProcess("agent-server-2"); err != nil || !running {
		t.Fatalf("kill agent-server-2: running %v, %v", running, err)
	}
	<-errc
	if pgProcessesOn(t, scratch) == "" {
		t.Fatal("the scratch postgres died with the agent: nothing to prove")
	}
	// Restart waits until the agent answers: by then it has swept.
	if err := theLab.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := pgProcessesOn(t, scratch); out != "" {
		t.Errorf("scratch postgres still runs after the agent came back:\n%s", out)
	}
	if _, err := os.Stat(scratch); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch %s left after the agent came back: %v", scratch, err)
	}
	if !strings.Contains(readFile(t, theLab.LogPath("agent-server-2")), "a drill part was cut short") {
		t.Errorf("the agent's log does not say it removed a cut-short drill")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// The bucket part restores a sample of app-media's copy as of its newest
// pass into scratch, each object checked against the index: the kept
// files hold the objects' bytes as the bucket has them.
func TestDrillBucketPart(t *testing.T) {
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := map[string][]byte{}
	for i := range 12 {
		k := fmt.Sprintf("drill/obj-%02d.bin", i)
		body := bytes.Repeat([]byte{byte('A' + i)}, 1000+i)
		if _, err := mc.PutObject(ctx, lab.AppBucket, k, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		want[k] = body
	}
	t.Cleanup(func() {
		for k := range want {
			_ = mc.RemoveObject(context.Background(), lab.AppBucket, k, minio.RemoveObjectOptions{})
		}
	})
	if r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource); r.code != 0 {
		t.Fatalf("bucket backup: exit %d\n%s", r.code, r.stderr)
	}
	res, phases, err := drillPart(t, theLab.AgentAddr("server-2"), &agentv1.RunDrillPartRequest{DrillId: drillID(t), Keep: true,
		Part: &agentv1.RunDrillPartRequest_Bucket{Bucket: &agentv1.DrillBucket{Source: lab.AppBucketSource, Sample: -1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ScratchDir != "" {
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.ScratchDir)) })
	}
	if !res.Ok {
		t.Fatalf("bucket part failed: %q\n%s", res.Problems, stepsOf(res))
	}
	// Kept, the scratch bucket beside the source's holds the objects'
	// bytes.
	scratch := res.Facts["scratchBucket"]
	if !strings.HasPrefix(scratch, "dr-drill-") {
		t.Fatalf("no scratch bucket in the facts %v\n%s", res.Facts, stepsOf(res))
	}
	t.Cleanup(func() { removeBucket(t, mc, scratch) })
	for k, body := range want {
		obj, err := mc.GetObject(ctx, scratch, k, minio.GetObjectOptions{})
		var got []byte
		if err == nil {
			got, err = io.ReadAll(obj)
			obj.Close()
		}
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s in scratch bucket %s: %d bytes (%v), want the bucket's %d", k, scratch, len(got), err, len(body))
		}
	}
	if _, err := mc.StatObject(ctx, scratch, ".dr-drill-running", minio.StatObjectOptions{}); err == nil {
		t.Errorf("the kept scratch bucket %s is still marked running (the agent would sweep it)", scratch)
	}
	if res.Counts["sampled"] != res.Counts["objects"] || res.Counts["objects"] < int64(len(want)) || res.FilesRestored != res.Counts["objects"] {
		t.Errorf("counts %v, files restored %d", res.Counts, res.FilesRestored)
	}
	if res.RecoveryPoint == nil || res.Facts["pass"] == "" {
		t.Errorf("no recovery point: %v", res.Facts)
	}
	if got := strings.Join(phases, ","); !strings.HasPrefix(got, "index,make-bucket,restore,verify") {
		t.Errorf("progress phases %s", got)
	}

	// A sample of 5 reads 5 objects, through a scratch bucket that is
	// gone when the part has reported.
	res, _, err = drillPart(t, theLab.AgentAddr("server-2"), &agentv1.RunDrillPartRequest{DrillId: drillID(t),
		Part: &agentv1.RunDrillPartRequest_Bucket{Bucket: &agentv1.DrillBucket{Source: lab.AppBucketSource, Sample: 5}}}, nil)
	if err != nil || !res.Ok || res.FilesRestored != 5 {
		t.Fatalf("sample 5: %v, ok %v, restored %d, problems %q", err, res.GetOk(), res.GetFilesRestored(), res.GetProblems())
	}
	if b := res.Facts["scratchBucket"]; b == "" || !strings.Contains(stepsOf(res), "remove-bucket") {
		t.Errorf("sample 5: scratch bucket %q, steps\n%s", b, stepsOf(res))
	} else if ok, err := mc.BucketExists(ctx, b); err != nil || ok {
		t.Errorf("scratch bucket %s after the part: exists %v (%v)", b, ok, err)
	}
}

func removeBucket(t *testing.T, mc *minio.Client, bucket string) {
	ctx := context.Background()
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err == nil {
			mc.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{})
		}
	}
	if err := mc.RemoveBucket(ctx, bucket); err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		t.Errorf("remove bucket %s: %v", bucket, err)
	}
}

// A scratch bucket an agent's bucket part left marked running (the agent
// killed mid-part) is removed when that agent starts again; a kept one
// (unmarked) and another node's stay. The name is dr-drill-<id>-<first 8
// hex of sha256(node/source)>.
func TestDrillScratchBucketSweptAtAgentStart(t *testing.T) {
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tag := func(node string) string {
		sum := sha256.Sum256([]byte(node + "/" + lab.AppBucketSource))
		return hex.EncodeToString(sum[:4])
	}
	// other is another node's (one that runs no agent here: the lab's
	// Restart may restart every agent, each sweeping its own).
	left, kept, other := "dr-drill-sweep-"+tag("server-2"), "dr-drill-kept-"+tag("server-2"), "dr-drill-sweep-"+tag("node-gone")
	for _, b := range []string{left, kept, other} {
		if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeBucket(t, mc, b) })
		put := func(key, body string) {
			// SeaweedFS may answer InternalError to the first writes
			// into a bucket it just made: the write is tried again.
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := mc.PutObject(ctx, b, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("put %s/%s: %v", b, key, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
		put("obj", "x")
		if b != kept {
			put(".dr-drill-running", "")
		}
	}
	if err := theLab.StopProcess("agent-server-2"); err != nil {
		t.Fatal(err)
	}
	// Restart waits until the agent answers: it sweeps before it serves.
	if err := theLab.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := mc.BucketExists(ctx, left); err != nil || ok {
		t.Errorf("scratch bucket %s left running by server-2 after its agent started: exists %v (%v)", left, ok, err)
	}
	for _, b := range []string{kept, other} {
		if ok, err := mc.BucketExists(ctx, b); err != nil || !ok {
			t.Errorf("scratch bucket %s after server-2's agent started: exists %v (%v), want it left alone", b, ok, err)
		}
	}
	if !strings.Contains(readFile(t, theLab.LogPath("agent-server-2")), "its scratch bucket is removed") {
		t.Errorf("the agent's log does not say it removed a cut-short drill's bucket")
	}
}
