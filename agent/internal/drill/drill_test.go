package drill

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/pgbackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

// snapshotInStore runs a real etcd, writes keys of three resource types,
// snapshots it and puts the snapshot into a file:// store encrypted to a
// new key, as an agent's save does.
func snapshotInStore(t *testing.T, dir string, store objstore.Store, keyFile string) *dbsnap.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peer, client := freeURL(t), freeURL(t)
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "m1", filepath.Join(dir, "live")
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-e.Server.ReadyNotify()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var rev int64
	for i := range 7 {
		for _, k := range []string{"/registry/configmaps/ns/cm-%d", "/registry/deployments/ns/d-%d", "/registry/example.com/widgets/ns/w-%d"} {
			if i >= 3 && strings.Contains(k, "widgets") {
				continue
			}
			resp, err := cli.Put(ctx, fmt.Sprintf(k, i), "value")
			if err != nil {
				t.Fatal(err)
			}
			rev = resp.Header.Revision
		}
	}
	path := filepath.Join(dir, "snap.db")
	version, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), clientv3.Config{Endpoints: []string{client.String()}}, path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := &dbsnap.Snapshot{Name: "drill-test-m1-1", Node: "m1", Created: time.Now().UTC().Truncate(time.Second), Revision: rev, EtcdVersion: version,
		Size: int64(len(data)), SHA256: fmt.Sprintf("%x", sha256.Sum256(data))}
	if err := dbsnap.Put(ctx, store, snap, path, id.Recipient(), nil); err != nil {
		t.Fatal(err)
	}
	return snap
}

func fileStore(t *testing.T, dir string) objstore.Store {
	t.Helper()
	st, err := objstore.Open(objstore.Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The etcd part restores the stored snapshot into a member served on
// loopback, finds the snapshot's revision and as many keys per resource
// type as the file holds, and leaves nothing behind; a stored object with
// one byte changed fails the part, naming its store key.
func TestEtcdPart(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	store := fileStore(t, storeDir)
	keyFile := filepath.Join(dir, "snapshot.key")
	snap := snapshotInStore(t, dir, store, keyFile)
	state := filepath.Join(dir, "state")
	id, err := dbsnap.LoadIdentity(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Node: "m1", StateDir: state, Store: store, Identity: id}
	ctx := context.Background()

	var phases []string
	res, err := e.RunEtcd(ctx, "drill-20260101-000000", snap, false, func(phase, _ string) { phases = append(phases, phase) })
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("etcd part failed: %v\nsteps: %+v", res.Problems, res.Steps)
	}
	for k, want := range map[string]int64{"configmaps": 7, "deployments.apps": 7, "widgets.example.com": 3} {
		if res.Counts[CountServed+k] != want || res.Counts[CountSnapshot+k] != want {
			t.Errorf("%s: served %d, in the file %d; want %d both", k, res.Counts[CountServed+k], res.Counts[CountSnapshot+k], want)
		}
	}
	if res.Facts["servedRevision"] != strconv.FormatInt(snap.Revision, 10) {
		t.Errorf("served revision %s, want the snapshot's %d", res.Facts["servedRevision"], snap.Revision)
	}
	if !res.RecoveryPoint.Equal(snap.Created) {
		t.Errorf("recovery point %s, want the snapshot's time %s", res.RecoveryPoint, snap.Created)
	}
	var restoreSteps []string
	for _, st := range res.Steps {
		if st.Restore {
			restoreSteps = append(restoreSteps, st.Name)
		}
	}
	if got := strings.Join(restoreSteps, ","); got != "fetch,verify,restore,start,health" {
		t.Errorf("restore steps %s", got)
	}
	if got := strings.Join(phases, ","); !strings.HasPrefix(got, "fetch,verify,restore,start,health,count,compare,stop,cleanup") {
		t.Errorf("progress phases %s", got)
	}
	if _, err := os.Stat(filepath.Join(state, "drill")); err == nil {
		if left, _ := os.ReadDir(filepath.Join(state, "drill")); len(left) > 0 {
			t.Errorf("scratch left behind: %v", left)
		}
	}

	// keep leaves the data dir, and no marker a sweep would take it by.
	res, err = e.RunEtcd(ctx, "drill-20260101-000001", snap, true, nil)
	if err != nil || !res.OK || res.ScratchDir == "" {
		t.Fatalf("kept part: %v %+v", err, res)
	}
	if _, err := os.Stat(filepath.Join(res.ScratchDir, "data", "member", "snap", "db")); err != nil {
		t.Errorf("kept scratch has no data dir: %v", err)
	}
	if removed, err := Sweep(state); err != nil || len(removed) != 0 {
		t.Errorf("sweep took a kept scratch: %v %v", removed, err)
	}

	obj := filepath.Join(storeDir, filepath.FromSlash(snap.StoreKey))
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(obj, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = e.RunEtcd(ctx, "drill-20260101-000002", snap, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], snap.StoreKey) || !strings.Contains(res.Problems[0], "checksum") {
		t.Fatalf("corrupt object: ok %v, problems %q; want a checksum problem naming %s", res.OK, res.Problems, snap.StoreKey)
	}
	if _, err := os.Stat(ScratchDir(state, "drill-20260101-000002", LayerEtcd, snap.Name)); !os.IsNotExist(err) {
		t.Errorf("failed part's scratch left: %v", err)
	}
}

// Without the snapshot key a drill part asked for by the plugin fails
// saying what to do; a scheduled drill (Unattended) checks the stored
// object against its recorded checksum, then reports the part not
// rehearsed, never passed; a damaged object still fails it.
func TestEtcdPartWithoutTheKey(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	store := fileStore(t, storeDir)
	snap := snapshotInStore(t, dir, store, filepath.Join(dir, "snapshot.key"))
	state := filepath.Join(dir, "state")
	ctx := context.Background()

	e := &Engine{Node: "m1", StateDir: state, Store: store}
	res, err := e.RunEtcd(ctx, "drill-20260101-000000", snap, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.NotRun != "" || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "this drill needs the snapshot key: run it through kubectl dr drill") {
		t.Errorf("attended part without the key: ok %v, not run %q, problems %q; want a failure saying to run it through kubectl dr drill", res.OK, res.NotRun, res.Problems)
	}

	e.Unattended = true
	res, err = e.RunEtcd(ctx, "drill-20260101-000001", snap, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	part := ReportPart(res)
	if part.Ran() || !strings.Contains(res.NotRun, "Rehearse it with kubectl dr drill") || !strings.Contains(res.NotRun, "matched its recorded size and sha256") {
		t.Errorf("scheduled part without the key: not run %q; want it not rehearsed, saying what was checked and what to do", res.NotRun)
	}
	var steps []string
	for _, st := range res.Steps {
		steps = append(steps, fmt.Sprintf("%s:%v", st.Name, st.OK))
	}
	if got := strings.Join(steps, ","); got != "fetch:true,cleanup:true" {
		t.Errorf("steps %s, want the stored object's check and the cleanup only", got)
	}

	obj := filepath.Join(storeDir, filepath.FromSlash(snap.StoreKey))
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(obj, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = e.RunEtcd(ctx, "drill-20260101-000002", snap, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.NotRun != "" || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "checksum") {
		t.Errorf("damaged object, scheduled part: ok %v, not run %q, problems %q; want a checksum failure", res.OK, res.NotRun, res.Problems)
	}
}

func TestSampleSpreadsOverTheKeys(t *testing.T) {
	var vs []bucketobj.Version
	for i := range 10 {
		vs = append(vs, bucketobj.Version{Key: strconv.Itoa(i)})
	}
	keys := func(vs []bucketobj.Version) string {
		var k []string
		for _, v := range vs {
			k = append(k, v.Key)
		}
		return strings.Join(k, ",")
	}
	for _, tc := range []struct {
		n    int64
		want string
	}{{3, "0,3,6"}, {5, "0,2,4,6,8"}, {10, "0,1,2,3,4,5,6,7,8,9"}, {50, "0,1,2,3,4,5,6,7,8,9"}, {-1, "0,1,2,3,4,5,6,7,8,9"}, {1, "0"}} {
		if got := keys(sample(vs, tc.n)); got != tc.want {
			t.Errorf("sample(10, %d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

// startScratchPostgres starts a real postgres on a new cluster in dir, as
// the database's user, in its own process group as VerifyWith does.
func startScratchPostgres(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Skip("no PostgreSQL 15 here (apt-get install postgresql-15)")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The database's user must reach dir: its parents up to the test's
	// temporary directory become 0755.
	for d := filepath.Dir(dir); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", dir, "-A", "trust", "-U", "postgres")
	initdb.SysProcAttr = cred
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	sock := filepath.Join(filepath.Dir(dir), "sock")
	if err := os.Mkdir(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(sock, uid, gid)
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", dir, "-c", "listen_addresses=", "-c", "unix_socket_directories="+sock, "-c", "port=5999")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred.Credential, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Positive signal: postgres has written its pid file once it runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid")); err == nil && strings.HasPrefix(string(data), strconv.Itoa(cmd.Process.Pid)+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("postgres did not start in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd
}

// A part cut short by the agent's death leaves its scratch marked running
// and a postgres whose parent is gone: Sweep stops that postgres (only a
// postgres on that data dir) and removes the scratch; a kept scratch and a
// pid file naming another process are left alone.
func TestSweepStopsTheScratchPostgres(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	cut := ScratchDir(state, "drill-1", LayerPostgres, "main")
	data := filepath.Join(cut, "data")
	pg := startScratchPostgres(t, data)
	exited := make(chan error, 1)
	go func() { exited <- pg.Wait() }()
	mustWrite(t, filepath.Join(cut, runningMark), "")
	if err := pgbackup.WriteScratchPID(filepath.Join(cut, pgPIDFile), pgbackup.ScratchPID{PID: pg.Process.Pid, DataDir: data}); err != nil {
		t.Fatal(err)
	}

	kept := ScratchDir(state, "drill-0", LayerEtcd, "snap")
	mustWrite(t, filepath.Join(kept, "data", "x"), "kept")

	// A pid file whose pid is some other process now (pid reuse).
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	reused := ScratchDir(state, "drill-2", LayerPostgres, "main")
	mustWrite(t, filepath.Join(reused, runningMark), "")
	if err := pgbackup.WriteScratchPID(filepath.Join(reused, pgPIDFile), pgbackup.ScratchPID{PID: other.Process.Pid, DataDir: filepath.Join(reused, "data")}); err != nil {
		t.Fatal(err)
	}

	removed, err := Sweep(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v, want %s and %s", removed, cut, reused)
	}
	// Sweep returns once the process has exited: a zombie until this
	// test, its parent, reaps it, with an empty command line.
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pg.Process.Pid)); err == nil && len(cmdline) > 0 {
		t.Errorf("scratch postgres (pid %d) still runs after the sweep: %q", pg.Process.Pid, cmdline)
	}
	<-exited
	if _, err := os.Stat(cut); !os.IsNotExist(err) {
		t.Errorf("cut-short scratch left: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(kept, "data", "x")); err != nil || string(got) != "kept" {
		t.Errorf("kept scratch touched: %q %v", got, err)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the sweep signalled a process that is not the scratch postgres: %v", err)
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
