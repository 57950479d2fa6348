package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/restic"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

var resticBinary string

// TestMain builds the restic the agent ships (the go.mod tool version):
// these tests run the real binary against a file:// store.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "files-test-")
	if err != nil {
		panic(err)
	}
	resticBinary = filepath.Join(dir, "restic")
	out, err := exec.Command("go", "build", "-o", resticBinary, "github.com/restic/restic/cmd/restic").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build restic: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fixture struct {
	store    objstore.Store
	storeDir string
	password string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := objstore.Open(objstore.Config{URL: "file://" + filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store.Sub("cluster"), storeDir: filepath.Join(dir, "store"), password: pw}
}

func (f *fixture) engine(t *testing.T, node string, paths ...string) *Engine {
	t.Helper()
	state := t.TempDir()
	return &Engine{
		Node: node,
		Repo: &restic.Repo{
			Binary:       resticBinary,
			Repository:   filepath.Join(f.storeDir, "cluster", RepoDir),
			PasswordFile: f.password,
			CacheDir:     filepath.Join(state, "cache"),
			LockWait:     time.Minute,
		},
		Store:    f.store,
		Paths:    agentconfig.PathSet{Paths: paths},
		AsideDir: filepath.Join(state, "aside"),
	}
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every node's first backup may start at the same cron tick: the
// repository must be initialised once, and every node's snapshot must be
// readable afterwards.
func TestConcurrentFirstBackupsShareOneRepository(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var engines []*Engine
	for i := range 3 {
		data := t.TempDir()
		write(t, filepath.Join(data, "f.txt"), fmt.Sprintf("node %d\n", i))
		engines = append(engines, f.engine(t, fmt.Sprintf("node-%d", i), data))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(engines))
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.Backup(ctx, BackupRequest{Set: "s1"}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node-%d: %v", i, err)
		}
	}
	snaps, err := engines[0].Repo.Snapshots(ctx, TagSet+"s1")
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 {
		t.Fatalf("%d snapshots of the set, want 3", len(snaps))
	}
	keys, _ := os.ReadDir(filepath.Join(f.storeDir, "cluster", RepoDir, "keys"))
	if len(keys) != 1 {
		t.Errorf("%d keys in the repository: it was initialised more than once", len(keys))
	}
	if claims, _ := f.store.List(ctx, claimDir); len(claims) != 0 {
		t.Errorf("initialisation claims left behind: %v", claims)
	}
}

func TestRestoreMovesReplacedFilesAsideAndLeavesNewOnes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := t.TempDir()
	write(t, filepath.Join(data, "keep.txt"), "keep\n")
	write(t, filepath.Join(data, "change.txt"), "original\n")
	write(t, filepath.Join(data, "sub", "gone.txt"), "gone\n")
	e := f.engine(t, "n1", data)
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "change.txt"), "edited\n")
	os.Remove(filepath.Join(data, "sub", "gone.txt"))
	write(t, filepath.Join(data, "new.txt"), "new\n")

	target := Target{Set: "s1"}
	pv, err := e.Preview(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Create.Files != 1 || pv.Change.Files != 1 || pv.Unchanged.Files != 1 || pv.Extra.Files != 1 {
		t.Fatalf("preview create %d change %d unchanged %d extra %d; want 1 each", pv.Create.Files, pv.Change.Files, pv.Unchanged.Files, pv.Extra.Files)
	}
	res, err := e.Restore(ctx, target, pv.Digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(data, "change.txt")); got != "original\n" {
		t.Errorf("change.txt = %q after restore", got)
	}
	if got := read(t, filepath.Join(data, "sub", "gone.txt")); got != "gone\n" {
		t.Errorf("gone.txt = %q after restore", got)
	}
	if got := read(t, filepath.Join(data, "new.txt")); got != "new\n" {
		t.Errorf("new.txt = %q: a file the backup does not hold was touched", got)
	}
	if got := read(t, filepath.Join(res.AsideDir, data, "change.txt")); got != "edited\n" {
		t.Errorf("the replaced file is not kept aside: %q", got)
	}
}

// A directory replaced by a symlink to somewhere else after the backup:
// the restore puts the directory back and writes nothing through the link.
func TestRestoreNeverWritesThroughASymlinkOutOfTheTarget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data, outside := t.TempDir(), t.TempDir()
	write(t, filepath.Join(data, "a", "x"), "inside\n")
	write(t, filepath.Join(outside, "x"), "outside\n")
	e := f.engine(t, "n1", data)
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(data, "a"))
	if err := os.Symlink(outside, filepath.Join(data, "a")); err != nil {
		t.Fatal(err)
	}
	res, err := e.Restore(ctx, Target{Set: "s1"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(outside, "x")); got != "outside\n" {
		t.Fatalf("the restore wrote through the symlink: %s is %q", filepath.Join(outside, "x"), got)
	}
	if st, err := os.Lstat(filepath.Join(data, "a")); err != nil || !st.IsDir() {
		t.Fatalf("a is not a directory again: %v", err)
	}
	if got := read(t, filepath.Join(data, "a", "x")); got != "inside\n" {
		t.Errorf("a/x = %q", got)
	}
	if l, err := os.Readlink(filepath.Join(res.AsideDir, data, "a")); err != nil || l != outside {
		t.Errorf("the symlink was not kept aside: %q %v", l, err)
	}
}

// countingRestic is the real restic, noting each run's command in a log.
func countingRestic(t *testing.T) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "restic"), filepath.Join(dir, "runs")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\nexec %q \"$@\"\n", log, resticBinary)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func runs(log string) []string {
	data, _ := os.ReadFile(log)
	return strings.Fields(string(data))
}

func TestBadInputIsRefusedBeforeResticRuns(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := t.TempDir()
	write(t, filepath.Join(data, "f"), "x")
	counting, log := countingRestic(t)
	engine := func(node string, paths ...string) *Engine {
		e := f.engine(t, node, paths...)
		e.Repo.Binary = counting
		return e
	}
	e := engine("n1", data)

	if _, err := engine("n2", "/nonexistent/dr-test").Backup(ctx, BackupRequest{}, nil); !errors.Is(err, ErrNoPaths) {
		t.Errorf("missing paths: %v, want ErrNoPaths", err)
	}
	if _, err := engine("n3").Backup(ctx, BackupRequest{}, nil); !errors.Is(err, ErrNoPaths) {
		t.Errorf("no paths configured: %v, want ErrNoPaths", err)
	}
	for _, p := range []string{"/etc", data + "/../etc", "relative"} {
		if _, err := e.Backup(ctx, BackupRequest{Paths: []string{p}}, nil); err == nil {
			t.Errorf("backup of %q outside the roots was accepted", p)
		}
	}
	// Nothing ran: restic was never started, no repository was made.
	if r := runs(log); len(r) != 0 {
		t.Errorf("refused backups ran restic: %v", r)
	}
	if objs, _ := f.store.List(ctx, RepoDir+"/"); len(objs) != 0 {
		t.Errorf("refused backups wrote %d objects", len(objs))
	}
	if _, err := e.Preview(ctx, Target{Set: "s1"}); !errors.Is(err, ErrNoRepo) {
		t.Errorf("preview with no repository: %v, want ErrNoRepo", err)
	}

	// The same engine with good input does run restic (the log works).
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	if r := runs(log); !slices.Contains(r, "backup") {
		t.Fatalf("a good backup's restic runs %v: no backup", r)
	}
	if _, err := e.Preview(ctx, Target{Set: "s1", Paths: []string{"/etc"}}); !errors.Is(err, ErrOutsideRoots) {
		t.Errorf("restore path outside the snapshot: %v, want ErrOutsideRoots", err)
	}
	if _, err := e.Preview(ctx, Target{Set: "nope"}); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("missing set: %v, want ErrNoSnapshot", err)
	}
	if _, err := e.Preview(ctx, Target{Set: "s1", PVC: "ns/none"}); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("missing PVC: %v, want ErrNoSnapshot", err)
	}

	wrong := f.engine(t, "n4", data)
	pw := filepath.Join(t.TempDir(), "pw")
	write(t, pw, "wrong\n")
	wrong.Repo.PasswordFile = pw
	if _, err := wrong.Backup(ctx, BackupRequest{}, nil); !errors.Is(err, restic.ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestPVCDirectoriesAreRecognised(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{
		"pvc-3f1c2b9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f_shop_data-postgres-0",
		"pvc-0d7c6c1e-8a4f-4c55-9c1b-6a2f1f0e5b11_kube-system_cache",
		"not-a-pvc",
		"pvc-xyz_ns", // not the provisioner's pattern
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := &Engine{PVs: func(context.Context) (map[string]string, error) {
		return map[string]string{filepath.Join(root, "not-a-pvc"): "apps/static"}, nil
	}}
	got := e.PVCs(context.Background(), []string{root})
	want := map[string]string{
		filepath.Join(root, "pvc-3f1c2b9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f_shop_data-postgres-0"): "shop/data-postgres-0",
		filepath.Join(root, "pvc-0d7c6c1e-8a4f-4c55-9c1b-6a2f1f0e5b11_kube-system_cache"):    "kube-system/cache",
		filepath.Join(root, "not-a-pvc"): "apps/static",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PVCs:\n got %v\nwant %v", got, want)
	}
}

// failingRestic is restic, except that a real restore writes partial
// content into paths and then fails, as restic does when the store goes
// away half-way.
func failingRestic(t *testing.T, paths ...string) string {
	t.Helper()
	script := "#!/bin/sh\ncase \" $* \" in *\" restore \"*) case \" $* \" in *\" --dry-run \"*) ;; *)\n"
	for _, p := range paths {
		script += fmt.Sprintf("  mkdir -p %q; echo partial > %q\n", filepath.Dir(p), p)
	}
	script += "  echo '{\"message_type\":\"error\",\"error\":{\"message\":\"load pack 0123456789ab: not found\"},\"during\":\"restore\",\"item\":\"/data/big.bin\"}' >&2\n"
	script += "  echo '{\"message_type\":\"exit_error\",\"code\":1,\"message\":\"Fatal: connection to the store lost\"}' >&2; exit 1;;\nesac;; esac\nexec " + resticBinary + " \"$@\"\n"
	bin := filepath.Join(t.TempDir(), "restic")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// A restore that fails after files were moved aside leaves the node's
// files as they were: replaced files back, files restic had begun to
// create moved out of the way (kept beside the aside directory), no journal.
func TestRestoreThatFailsPutsTheFilesBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := t.TempDir()
	write(t, filepath.Join(data, "change.txt"), "original\n")
	write(t, filepath.Join(data, "sub", "gone.txt"), "gone\n")
	e := f.engine(t, "n1", data)
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "change.txt"), "edited\n")
	os.Remove(filepath.Join(data, "sub", "gone.txt"))

	e.Repo.Binary = failingRestic(t, filepath.Join(data, "change.txt"), filepath.Join(data, "sub", "gone.txt"))
	_, err := e.Restore(ctx, Target{Set: "s1"}, "", nil)
	if err == nil || !strings.Contains(err.Error(), "connection to the store lost: /data/big.bin: load pack 0123456789ab: not found") || !strings.Contains(err.Error(), "the node's files are as they were") {
		t.Fatalf("err = %v, want restic's failure, what it could not restore and that the files are as they were", err)
	}
	if got := read(t, filepath.Join(data, "change.txt")); got != "edited\n" {
		t.Errorf("change.txt = %q after the failed restore, want the node's own content back", got)
	}
	if _, err := os.Stat(filepath.Join(data, "sub", "gone.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gone.txt holds restic's partial file after the failed restore: %v", err)
	}
	journals, _ := filepath.Glob(filepath.Join(e.AsideDir, "*.journal.json"))
	if len(journals) != 0 {
		t.Errorf("journals left: %v", journals)
	}
	partial, _ := filepath.Glob(filepath.Join(e.AsideDir, "*.failed", data, "sub", "gone.txt"))
	if len(partial) != 1 || read(t, partial[0]) != "partial\n" {
		t.Errorf("restic's partial output is not kept aside: %v", partial)
	}

	// The same restore with a working restic then succeeds.
	e.Repo.Binary = resticBinary
	if _, err := e.Restore(ctx, Target{Set: "s1"}, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(data, "change.txt")); got != "original\n" {
		t.Errorf("change.txt = %q after the second restore", got)
	}
}

// An agent killed in the middle of a restore (files moved aside, restic
// half done, no undo) puts the files back when it starts again.
func TestRecoverRestoresUndoesAnInterruptedRestore(t *testing.T) {
	f := newFixture(t)
	data := t.TempDir()
	e := f.engine(t, "n1", data)
	live, created := filepath.Join(data, "db", "table"), filepath.Join(data, "db", "new")
	j := &journal{Snapshot: "abc", Aside: filepath.Join(e.AsideDir, "20260101T000000Z-abc"), Moves: []string{live}, Creates: []string{created}}
	if err := j.save(); err != nil {
		t.Fatal(err)
	}
	// As the kill left it: the live file aside, restic's partial output
	// in its place and one created file.
	write(t, filepath.Join(j.Aside, live), "the node's rows\n")
	write(t, live, "half a restore\n")
	write(t, created, "half a new file\n")

	undone, err := e.RecoverRestores()
	if err != nil || len(undone) != 1 {
		t.Fatalf("RecoverRestores = %v, %v; want one journal undone", undone, err)
	}
	if got := read(t, live); got != "the node's rows\n" {
		t.Errorf("%s = %q, want the node's own content back", live, got)
	}
	if _, err := os.Stat(created); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the half-created file is still in place: %v", err)
	}
	if _, err := os.Stat(j.path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal still there: %v", err)
	}
	if undone, err := e.RecoverRestores(); err != nil || len(undone) != 0 {
		t.Errorf("a second recovery did %v, %v; want nothing", undone, err)
	}
}

// A node that claimed the repository's initialisation and died (its agent
// was killed) does not hold the others up: its claim is not kept fresh,
// the next node removes it, initialises and backs up.
func TestAnAbandonedInitClaimIsTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.store.Put(ctx, claimDir+"node-dead", strings.NewReader("node-dead"), int64(len("node-dead"))); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	write(t, filepath.Join(data, "f.txt"), "live node\n")
	e := f.engine(t, "node-live", data)
	e.ClaimAbandoned = time.Second
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatalf("backup with a dead node's claim in the store: %v", err)
	}
	if snaps, err := e.Repo.Snapshots(ctx, TagSet+"s1"); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots of the set: %v, %v; want one", snaps, err)
	}
	if claims, _ := f.store.List(ctx, claimDir); len(claims) != 0 {
		t.Errorf("initialisation claims left behind: %v", claims)
	}
}

// A claim's files into the volume of the claim restored in its place: the
// backed-up directory's contents land in another directory, what is there
// and differs is moved aside first, and nothing lands at the old path.
func TestRestoreIntoAnotherDirectory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	root := t.TempDir()
	old := filepath.Join(root, "pvc-0d7c6c1e-8a4f-4c55-9c1b-6a2f1f0e5b11_shop_data")
	write(t, filepath.Join(old, "a.txt"), "a\n")
	write(t, filepath.Join(old, "sub", "b.txt"), "b\n")
	write(t, filepath.Join(root, "other", "c.txt"), "not this claim\n")
	e := f.engine(t, "n1", root)
	if _, err := e.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(old); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(root, "pvc-99999999-8a4f-4c55-9c1b-6a2f1f0e5b11_shop_data")
	write(t, filepath.Join(into, "a.txt"), "the app's new file\n")
	write(t, filepath.Join(into, "extra.txt"), "extra\n")

	for _, target := range []Target{{Set: "s1", PVC: "shop/data", Into: into}, {Set: "s1", Paths: []string{old}, Into: into}} {
		pv, err := e.Preview(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range pv.Changes {
			got = append(got, c.Kind+" "+c.Path)
		}
		want := []string{"change " + filepath.Join(into, "a.txt"), "create " + filepath.Join(into, "sub", "b.txt")}
		if fmt.Sprint(got) != fmt.Sprint(want) || pv.Extra.Files != 1 || pv.Target != into {
			t.Fatalf("preview of %+v: changes %v, extra %d, target %s; want %v, 1 and %s", target, got, pv.Extra.Files, pv.Target, want, into)
		}
	}
	target := Target{Set: "s1", PVC: "shop/data", Into: into}
	pv, _ := e.Preview(ctx, target)
	res, err := e.Restore(ctx, target, pv.Digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(into, "a.txt")); got != "a\n" {
		t.Errorf("a.txt = %q", got)
	}
	if got := read(t, filepath.Join(into, "sub", "b.txt")); got != "b\n" {
		t.Errorf("sub/b.txt = %q", got)
	}
	if got := read(t, filepath.Join(into, "extra.txt")); got != "extra\n" {
		t.Errorf("extra.txt = %q: a file the backup does not hold was touched", got)
	}
	if got := read(t, filepath.Join(res.AsideDir, into, "a.txt")); got != "the app's new file\n" {
		t.Errorf("the replaced file is not kept aside: %q", got)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old directory was restored too: %v", err)
	}
	if _, err := os.Stat(filepath.Join(into, "other")); !os.IsNotExist(err) {
		t.Errorf("another directory of the snapshot landed in the volume: %v", err)
	}

	for _, bad := range []Target{
		{Set: "s1", Into: into},
		{Set: "s1", PVC: "shop/data", Into: into, Dir: root},
		{Set: "s1", PVC: "shop/data", Into: "relative"},
	} {
		if _, err := e.Preview(ctx, bad); err == nil {
			t.Errorf("preview of %+v: no error", bad)
		}
	}
}

// Every node's newest file snapshot is found in the repository, whether
// a backup set took it or a schedule did, from any node's engine: what a
// scheduled drill on one node rehearses for all of them.
func TestNewestPerNodeFindsEveryNodesNewestSnapshot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	data := t.TempDir()
	write(t, filepath.Join(data, "f.txt"), "one\n")
	a, b := f.engine(t, "node-a", data), f.engine(t, "node-b", data)
	if _, err := a.Backup(ctx, BackupRequest{Set: "s1"}, nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "f.txt"), "two\n")
	newer, err := a.Backup(ctx, BackupRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	only, err := b.Backup(ctx, BackupRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.NewestPerNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["node-a"].ID != newer.Summary.SnapshotID || got["node-b"].ID != only.Summary.SnapshotID {
		t.Errorf("newest per node %v; want node-a %s and node-b %s", got, newer.Summary.SnapshotID, only.Summary.SnapshotID)
	}
}
