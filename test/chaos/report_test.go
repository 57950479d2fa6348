package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// report is what the run prints at the end and writes to $CHAOS_REPORT.
type report struct {
	mu      sync.Mutex
	seed    uint64
	planned int
	start   time.Time
	// ran is how many steps ran; stopped says why the run ended early.
	ran     int
	stopped string
	// byFault and byOp count the faults that landed during an operation;
	// missed counts those whose operation ended first.
	byFault map[fault]int
	byOp    map[op]int
	matrix  map[op]map[fault]int
	missed  map[fault]int
	// exits counts the faulted operations' exit codes ("killed" for a
	// plugin SIGKILL).
	exits map[op]map[string]int
	// checks counts each invariant checked.
	checks map[string]int
	// unwound counts, per operation, the next runs refused as busy while
	// the faulted one unwound, and the longest wait.
	unwound    map[string]int
	unwoundMax map[string]time.Duration
	violations []violation
	log        []string
}

type violation struct {
	iter      int
	step      string
	invariant string
	detail    string
}

func newReport(seed uint64, planned int) *report {
	return &report{
		seed: seed, planned: planned, start: time.Now(),
		byFault: map[fault]int{}, byOp: map[op]int{}, matrix: map[op]map[fault]int{},
		missed: map[fault]int{}, exits: map[op]map[string]int{}, checks: map[string]int{},
		unwound: map[string]int{}, unwoundMax: map[string]time.Duration{},
	}
}

func (r *report) fault(s step, landed bool, exit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exits[s.Op] == nil {
		r.exits[s.Op] = map[string]int{}
	}
	r.exits[s.Op][exit]++
	if !landed {
		r.missed[s.Fault]++
		return
	}
	r.byFault[s.Fault]++
	r.byOp[s.Op]++
	if r.matrix[s.Op] == nil {
		r.matrix[s.Op] = map[fault]int{}
	}
	r.matrix[s.Op][s.Fault]++
}

func (r *report) checked(invariant string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[invariant] += n
}

func (r *report) waited(o string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unwound[o]++
	r.unwoundMax[o] = max(r.unwoundMax[o], d)
}

func (r *report) violate(v violation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations = append(r.violations, v)
}

func (r *report) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

func (r *report) landed() int {
	n := 0
	for _, c := range r.byFault {
		n += c
	}
	return n
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func (r *report) write(w io.Writer, withSteps bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "kubectl dr chaos run\n")
	fmt.Fprintf(w, "seed:        %d\n", r.seed)
	fmt.Fprintf(w, "steps:       %d of %d planned", r.ran, r.planned)
	if r.stopped != "" {
		fmt.Fprintf(w, " (stopped: %s)", r.stopped)
	}
	fmt.Fprintf(w, "\nfaults:      %d landed during an operation, %d missed (the operation ended first)\n", r.landed(), sumMissed(r.missed))
	fmt.Fprintf(w, "run time:    %s\n", time.Since(r.start).Round(time.Second))
	fmt.Fprintf(w, "\nfaults by kind:\n")
	for _, f := range faults {
		fmt.Fprintf(w, "  %-16s %4d landed %4d missed\n", f, r.byFault[f], r.missed[f])
	}
	fmt.Fprintf(w, "\nfaults by operation (landed):\n  %-24s", "")
	for _, f := range faults {
		fmt.Fprintf(w, " %15s", f)
	}
	fmt.Fprintf(w, " %6s  exits of the faulted runs\n", "total")
	for _, o := range ops {
		fmt.Fprintf(w, "  %-24s", o)
		for _, f := range faults {
			fmt.Fprintf(w, " %15d", r.matrix[o][f])
		}
		var exits []string
		for _, e := range sortedKeys(r.exits[o]) {
			exits = append(exits, fmt.Sprintf("%s×%d", e, r.exits[o][e]))
		}
		fmt.Fprintf(w, " %6d  %s\n", r.byOp[o], strings.Join(exits, " "))
	}
	fmt.Fprintf(w, "\ninvariants checked:\n")
	total := 0
	for _, k := range sortedKeys(r.checks) {
		fmt.Fprintf(w, "  %-44s %6d\n", k, r.checks[k])
		total += r.checks[k]
	}
	fmt.Fprintf(w, "  %-44s %6d\n", "total", total)
	if len(r.unwound) > 0 {
		fmt.Fprintf(w, "\nnext operations refused as busy while the faulted one unwound (waited for, up to %s):\n", unwindLimit)
		for _, o := range sortedKeys(r.unwound) {
			fmt.Fprintf(w, "  %-24s %4d times, longest %s\n", o, r.unwound[o], r.unwoundMax[o].Round(100*time.Millisecond))
		}
	}
	fmt.Fprintf(w, "\nviolations:  %d\n", len(r.violations))
	for _, v := range r.violations {
		fmt.Fprintf(w, "  step %d (%s): %s: %s\n", v.iter, v.step, v.invariant, v.detail)
		fmt.Fprintf(w, "    replay: CHAOS_SEED=%d CHAOS_FAULTS=%d hack/chaos\n", r.seed, v.iter+1)
	}
	if withSteps && len(r.log) > 0 {
		fmt.Fprintf(w, "\nsteps:\n")
		for _, l := range r.log {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func sumMissed(m map[fault]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}
