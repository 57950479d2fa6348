package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// outcome is how a faulted operation went.
type outcome struct {
	landed bool
	note   string
	res    result
	// bytes went between the agents and the store during the operation.
	bytes int64
}

func (o outcome) exit() string {
	switch {
	case o.res.killed:
		return "killed"
	case o.res.timedOut:
		return "hung"
	}
	return fmt.Sprintf("exit-%d", o.res.code)
}

// faulted runs kubectl dr args with s's fault injected.
func (h *harness) faulted(s step, args ...string) outcome {
	in := h.arm(s)
	sent := h.proxy.Transferred()
	var anchor *regexp.Regexp
	if s.Anchored {
		anchor = anchors[s.Op]
	}
	p := h.startPlugin(anchor, args...)
	in.aim(p)
	res := p.wait()
	landed, note := in.disarm()
	return outcome{landed: landed, note: note, res: res, bytes: h.proxy.Transferred() - sent}
}

// busy is how an agent refuses work while the same work runs: a faulted
// operation the agent still unwinds (a cancelled base backup, a restore
// plan resuming) is waited for, not taken as a leftover lock.
var busy = []string{"try again when", "is running on node", "in progress"}

// unwindLimit is how long a refusal as busy may last after a fault; past
// it the lock is a leftover.
const unwindLimit = time.Minute

// next runs the operation again with nothing broken: it must succeed, on
// the same nodes, with no lock or plan of the faulted run in the way.
func (h *harness) next(s step, args ...string) (result, bool) {
	start := time.Now()
	for tries := 1; ; tries++ {
		r := h.run(args...)
		h.t.Logf("  next: kubectl dr %s: exit %d after %s", strings.Join(args, " "), r.code, r.took.Round(100*time.Millisecond))
		if r.code != 0 && !r.timedOut && slices.ContainsFunc(busy, func(b string) bool { return strings.Contains(r.stderr, b) }) {
			if time.Since(start) < unwindLimit {
				time.Sleep(time.Second)
				continue
			}
			h.rep.checked("no leftover lock", 1)
			h.violate(s, "no leftover lock", fmt.Sprintf("still refused as busy after %s: %s", unwindLimit, r))
			return r, false
		}
		if tries > 1 && r.code == 0 {
			h.rep.waited(string(s.Op), time.Since(start)-r.took)
		}
		h.rep.checked("no leftover lock", 1)
		h.rep.checked("next operation succeeds", 1)
		if r.code != 0 || r.timedOut {
			h.violate(s, "next operation succeeds", r.String())
			return r, false
		}
		return r, true
	}
}

func (h *harness) violate(s step, invariant, detail string) {
	h.t.Errorf("step %d (%s): %s: %s", s.Iter, s, invariant, detail)
	h.rep.violate(violation{iter: s.Iter, step: s.String(), invariant: invariant, detail: firstLines(detail, 25)})
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n      ")
}

// backup: `kubectl dr backup create`, the etcd snapshot and every node's
// files, faulted; then another.
func (h *harness) opBackup(s step) outcome {
	name := fmt.Sprintf("chaos-%03d", s.Iter)
	files := h.hashAll()
	o := h.faulted(s, "backup", "create", name)
	h.ensureUp()
	if set, ok := h.describe(name); ok && set.Phase == backupset.Completed {
		h.sets[name] = files
	}
	if _, ok := h.next(s, "backup", "create", name+"-next"); ok {
		if set, ok := h.describe(name + "-next"); ok && set.Phase == backupset.Completed {
			h.sets[name+"-next"], h.lastSet = files, name+"-next"
		} else {
			h.violate(s, "next operation succeeds", fmt.Sprintf("backup %s-next exited 0 but is not Completed", name))
		}
	}
	return o
}

func (h *harness) describe(name string) (printers.BackupSet, bool) {
	r := h.run("backup", "describe", name, "-o", "json")
	var set printers.BackupSet
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &set) != nil {
		return set, false
	}
	return set, true
}

// snapshot: `kubectl dr etcd snapshot save`, faulted; then another.
func (h *harness) opSnapshot(s step) outcome {
	name := fmt.Sprintf("chaos-%03d", s.Iter)
	o := h.faulted(s, "etcd", "snapshot", "save", "--name", name, "-o", "json")
	h.ensureUp()
	if r, ok := h.next(s, "etcd", "snapshot", "save", "--name", name+"-next", "-o", "json"); ok {
		var snap printers.EtcdSnapshot
		if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil || snap.Location != "store" {
			h.violate(s, "next operation succeeds", fmt.Sprintf("snapshot %s-next: %v, location %q, want in the store", name, err, snap.Location))
		}
	}
	return o
}

// fileRestore: the newest Completed set restored in place over changed,
// deleted and added files, faulted. Every file is then its old content or
// the backup's; the next restore brings back exactly the backup's.
func (h *harness) opFileRestore(s step) outcome {
	if h.lastSet == "" {
		name := fmt.Sprintf("chaos-%03d-base", s.Iter)
		files := h.hashAll()
		if _, ok := h.next(s, "backup", "create", name); !ok {
			return outcome{note: "no backup set to restore"}
		}
		h.sets[name], h.lastSet = files, name
	}
	set := h.lastSet
	backup := h.sets[set]
	h.mutate(s.Seed)
	old := h.hashAll()
	o := h.faulted(s, "restore", set, "--yes")
	h.ensureUp()
	h.restoresSettled(s)
	h.checkFiles(s, "files are old or restored", old, backup, o.res.code == 0)
	if _, ok := h.next(s, "restore", set, "--yes"); ok {
		h.checkFiles(s, "files are restored after the next restore", old, backup, true)
	}
	return o
}

// restoresSettled waits until no agent holds a file restore's journal
// (written before anything moves aside, removed once the restore finished
// or was undone): a restore whose plugin was killed undoes itself once
// restic has stopped, and one whose agent died is undone when the agent
// starts again. The files are checked after that, not while the agent is
// putting them back.
func (h *harness) restoresSettled(s step) {
	h.rep.checked("a cut-off file restore is undone", 1)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var left []string
		for _, n := range h.nodes {
			j, _ := filepath.Glob(filepath.Join(h.cfgs[n].StateDir, "restore-aside", "*.journal.json"))
			left = append(left, j...)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.violate(s, "a cut-off file restore is undone", "journals still there after 2m: "+strings.Join(left, ", "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkFiles holds every path the node had or the backup has to its old
// content or the backup's; exact wants the backup's wherever the backup
// has the path (a restore that succeeded), the old content elsewhere.
func (h *harness) checkFiles(s step, invariant string, old, backup map[string]string, exact bool) {
	now := h.hashAll()
	paths := map[string]bool{}
	for p := range old {
		paths[p] = true
	}
	for p := range backup {
		paths[p] = true
	}
	var bad []string
	for p := range paths {
		got, was, want := now[p], old[p], backup[p]
		ok := got == was || (want != "" && got == want)
		if exact {
			ok = got == want || (want == "" && got == was)
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, old %s, backup %s", p, short(got), short(was), short(want)))
		}
	}
	slices.Sort(bad)
	h.rep.checked(invariant, len(paths))
	if len(bad) > 0 {
		h.violate(s, invariant, fmt.Sprintf("%d of %d files:\n%s", len(bad), len(paths), strings.Join(bad, "\n")))
	}
}

func short(sum string) string {
	if sum == "" {
		return "(absent)"
	}
	return sum[:12]
}

// mutate changes three files, deletes three and adds one on every node,
// and rewrites one large file.
func (h *harness) mutate(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range h.nodes {
		files := h.hashTree(h.roots[n])
		var paths []string
		for p := range files {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		rng.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
		for _, p := range paths[:3] {
			h.writeFile(p, randomBytes(rng, 100+rng.IntN(3000)))
		}
		for _, p := range paths[3:6] {
			if err := os.Remove(p); err != nil {
				h.t.Fatal(err)
			}
		}
		h.writeFile(filepath.Join(h.roots[n], fmt.Sprintf("new-%016x.txt", seed)), randomBytes(rng, 200))
		h.writeFile(filepath.Join(h.roots[n], fmt.Sprintf("large-%d.bin", rng.IntN(2))), randomBytes(rng, 2<<20))
	}
}

// wal: pgbench writes all along; for the operation WAL is switched every
// 300 ms while `kubectl dr pg basebackup` runs, faulted. Then another base
// backup.
func (h *harness) opWAL(s step) outcome {
	stop := make(chan struct{})
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			_, _ = h.psql("SELECT pg_switch_wal()")
		}
	}()
	start := time.Now()
	o := h.faulted(s, "pg", "basebackup", lab.WALSource)
	// At least 3 s of new WAL, faulted or not.
	if d := 3*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	close(stop)
	<-switched
	h.ensureUp()
	h.next(s, "pg", "basebackup", lab.WALSource)
	return o
}

// etcdRestore: a fresh snapshot restored with a plan, faulted; etcd must
// come back healthy, the plan end, and the next restore run.
func (h *harness) opEtcdRestore(s step) outcome {
	r, ok := h.next(s, "etcd", "snapshot", "save", "--name", fmt.Sprintf("chaos-%03d-pre", s.Iter), "-o", "json")
	var saved printers.EtcdSnapshot
	if !ok || json.Unmarshal([]byte(r.stdout), &saved) != nil {
		return outcome{note: "no snapshot to restore"}
	}
	snap := saved.Name
	o := h.faulted(s, "etcd", "restore", snap, "--yes")
	h.ensureUp()
	h.waitRestored(s)
	if _, ok := h.next(s, "etcd", "restore", snap, "--yes"); ok {
		h.waitRestored(s)
	}
	return o
}

// waitRestored waits until no plan runs and every member is healthy: an
// agent killed mid-plan resumes it when it starts again.
func (h *harness) waitRestored(s step) {
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for {
		r := h.run("etcd", "restore", "--status")
		last = r.String()
		healthy := true
		for _, n := range h.l.EtcdNodes() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st := etcdmember.Status(ctx, h.l.EtcdClient(n))
			cancel()
			if !st.Healthy {
				healthy = false
				last += fmt.Sprintf("\netcd on %s: %v", n, st.Err)
			}
		}
		if r.code == 0 && healthy && !strings.Contains(r.stdout, " running") {
			h.rep.checked("etcd healthy, no plan running after a restore", 1)
			return
		}
		if time.Now().After(deadline) {
			h.violate(s, "etcd healthy, no plan running after a restore", "after 2 minutes:\n"+last)
			// Go on with the run: etcd started by hand, as the hint says.
			for _, n := range h.l.EtcdNodes() {
				_ = h.l.StartEtcdMember(n)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// psql runs one query against the lab's database.
func (h *harness) psql(q string) (string, error) {
	bin, err := lab.PGBin("psql")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", q)
	cmd.Env = append(os.Environ(), h.l.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", q, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// startBench initialises pgbench's tables and keeps a light load on the
// database for the whole run.
func (h *harness) startBench() {
	h.t.Helper()
	bin, err := lab.PGBin("pgbench")
	if err != nil {
		h.t.Fatal(err)
	}
	init := exec.Command(bin, "-i", "-s", "1", "-q")
	init.Env = append(os.Environ(), h.l.Env()...)
	if out, err := init.CombinedOutput(); err != nil {
		h.t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	run := exec.Command(bin, "-n", "-c", "2", "-R", "50", "-T", "86400")
	run.Env = append(os.Environ(), h.l.Env()...)
	if err := run.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.stopBench = func() { run.Process.Kill(); run.Wait() }
}
