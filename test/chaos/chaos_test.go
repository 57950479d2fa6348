package chaos

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Defaults of the knobs: the short run `make test` does; hack/chaos sets
// CHAOS_FAULTS=200.
const (
	defaultFaults  = 12
	defaultTimeout = 90 * time.Second
)

// knobs reads CHAOS_SEED, CHAOS_FAULTS, CHAOS_TIMEOUT and CHAOS_REPORT.
func knobs(t *testing.T) (seed uint64, n int, timeout time.Duration, reportPath string) {
	t.Helper()
	seed = uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer: %v", v, err)
		}
		seed = s
	}
	n = defaultFaults
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		f, err := strconv.Atoi(v)
		if err != nil || f < 1 {
			t.Fatalf("CHAOS_FAULTS=%q: want a positive number of faults", v)
		}
		n = f
	}
	timeout = defaultTimeout
	if v := os.Getenv("CHAOS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_TIMEOUT=%q: want a duration such as 90s or 2h", v)
		}
		timeout = d
	}
	reportPath = os.Getenv("CHAOS_REPORT")
	if reportPath == "" {
		reportPath = filepath.Join(os.TempDir(), fmt.Sprintf("kubectl-dr-chaos-%d.txt", seed))
	}
	return seed, n, timeout, reportPath
}

// The chaos run: a seeded schedule of faults, each landing in the middle
// of an operation, then the invariants. No violation may be found.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run needs the lab")
	}
	seed, n, timeout, reportPath := knobs(t)
	t.Logf("chaos run: CHAOS_SEED=%d CHAOS_FAULTS=%d CHAOS_TIMEOUT=%s", seed, n, timeout)
	rep := newReport(seed, n)
	defer func() {
		rep.write(os.Stdout, false)
		var b bytes.Buffer
		rep.write(&b, true)
		if err := os.MkdirAll(filepath.Dir(reportPath), 0o755); err != nil {
			t.Errorf("write the report: %v", err)
		} else if err := os.WriteFile(reportPath, b.Bytes(), 0o644); err != nil {
			t.Errorf("write the report: %v", err)
		} else {
			fmt.Printf("report written to %s\n", reportPath)
		}
	}()

	h := newHarness(t, rep)
	h.writeTrees(seed)
	h.startBench()
	defer h.stopBench()
	steps := schedule(seed, n, h.nodes)
	start := time.Now()
	for _, s := range steps {
		if d := time.Since(start); d > timeout {
			rep.stopped = fmt.Sprintf("CHAOS_TIMEOUT %s reached after %s", timeout, d.Round(time.Second))
			break
		}
		h.iter = s.Iter
		t0 := time.Now()
		var o outcome
		switch s.Op {
		case opBackup:
			o = h.opBackup(s)
		case opSnapshot:
			o = h.opSnapshot(s)
		case opFileRestore:
			o = h.opFileRestore(s)
		case opWAL:
			o = h.opWAL(s)
		case opEtcdRestore:
			o = h.opEtcdRestore(s)
		}
		if o.res.timedOut {
			h.violate(s, "operations end", fmt.Sprintf("still running after %s: %s", opTimeout, o.res))
		}
		h.ensureUp()
		tOps := time.Since(t0)
		h.checkAll(s, false)
		rep.fault(s, o.landed, o.exit())
		rep.ran++
		landed := "missed"
		if o.landed {
			landed = o.note
		}
		line := fmt.Sprintf("%s -> %s after %s, %d bytes to and from the store (%s); step %s, checks %s", s, o.exit(), o.res.took.Round(100*time.Millisecond), o.bytes, landed,
			tOps.Round(100*time.Millisecond), (time.Since(t0) - tOps).Round(100*time.Millisecond))
		rep.logf("%s", line)
		t.Log(line)
	}
	// Everything listed is read back once more at the end.
	h.checkAll(step{Iter: rep.ran, Op: "final check"}, true)
}
