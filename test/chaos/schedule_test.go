package chaos

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"testing"
	"time"
)

// An operation the chaos run drives.
type op string

const (
	opBackup      op = "backup-create"
	opSnapshot    op = "etcd-snapshot-save"
	opFileRestore op = "files-restore"
	opWAL         op = "wal-pgbench-basebackup"
	opEtcdRestore op = "etcd-restore"
)

var ops = []op{opBackup, opSnapshot, opFileRestore, opWAL, opEtcdRestore}

// weight is how often an operation comes up after the first round: an etcd
// restore stops etcd and takes longest, so it comes up less often.
var weight = map[op]int{opBackup: 4, opSnapshot: 4, opFileRestore: 4, opWAL: 4, opEtcdRestore: 1}

// typical is about how long an operation takes in the lab when nothing
// breaks; a process fault lands at a random fraction of it.
var typical = map[op]time.Duration{
	opBackup:      1200 * time.Millisecond,
	opSnapshot:    150 * time.Millisecond,
	opFileRestore: 2 * time.Second,
	opWAL:         2 * time.Second,
	opEtcdRestore: 8 * time.Second,
}

// typicalBytes is about how much goes between the agents and the store
// during an operation; a network cut lands after a random part of it.
var typicalBytes = map[op]int64{
	opBackup:      200 << 10,
	opSnapshot:    40 << 10,
	opFileRestore: 6 << 20,
	opWAL:         2 << 20,
	opEtcdRestore: 60 << 10,
}

// anchors mark in kubectl dr's output where an operation's risky part
// begins: the preview printed, files about to move aside and restic to
// restore; a restore plan about to stop etcd. Half the steps of these operations
// start their fault's clock there (afterAnchor is about how long that
// part takes), so faults land in it however long the preview before it
// took.
var anchors = map[op]*regexp.Regexp{
	opFileRestore: regexp.MustCompile(`(?m)^NODE\s+CREATE\s+REPLACE`),
	opEtcdRestore: regexp.MustCompile(`; starting\n`),
}

var anchorName = map[op]string{
	opFileRestore: "the preview",
	opEtcdRestore: "the plan starting",
}

var afterAnchor = map[op]time.Duration{
	opFileRestore: 2 * time.Second,
	opEtcdRestore: 5 * time.Second,
}

// A fault the chaos run injects.
type fault string

const (
	faultAgentKill  fault = "agent-sigkill"
	faultPluginKill fault = "plugin-sigkill"
	faultMinIOKill  fault = "minio-sigkill"
	faultNetCut     fault = "network-cut"
)

var faults = []fault{faultAgentKill, faultPluginKill, faultMinIOKill, faultNetCut}

// step is one iteration: an operation and the fault injected into it.
type step struct {
	Iter  int
	Op    op
	Fault fault
	// Node is whose agent is killed (agent-sigkill).
	Node string
	// After is when the fault lands, from the operation's start
	// (process kills).
	After time.Duration
	// Bytes is how much the agents may still send to the store before the
	// network is cut (network-cut).
	Bytes int64
	// Anchored: After and Bytes count from the operation's anchor (see
	// anchors), not its start.
	Anchored bool
	// Outage is how long MinIO or the network stays down.
	Outage time.Duration
	// Seed varies what the step writes (file changes).
	Seed uint64
}

func (s step) String() string {
	what := fmt.Sprintf("after %s", s.After.Round(time.Millisecond))
	switch s.Fault {
	case faultAgentKill:
		what = fmt.Sprintf("%s's agent %s", s.Node, what)
	case faultNetCut:
		what = fmt.Sprintf("after %d bytes to the store, down %s", s.Bytes, s.Outage.Round(time.Millisecond))
	case faultMinIOKill:
		what += fmt.Sprintf(", down %s", s.Outage.Round(time.Millisecond))
	}
	if s.Anchored {
		what += " from " + anchorName[s.Op]
	}
	return fmt.Sprintf("#%d %s: %s %s", s.Iter, s.Op, s.Fault, what)
}

// schedule is the run's plan, a pure function of the seed: the first
// len(ops) steps are every operation once in a seeded order, the rest
// drawn by weight; every step's fault, node and kill point are drawn from
// the same generator. A longer run starts with the same steps as a
// shorter one, so CHAOS_FAULTS=i+1 replays a run up to step i.
func schedule(seed uint64, n int, nodes []string) []step {
	rng := rand.New(rand.NewPCG(seed, seed^0x5deece66d))
	first := append([]op(nil), ops...)
	rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	total := 0
	for _, o := range ops {
		total += weight[o]
	}
	out := make([]step, 0, n)
	for i := range n {
		var o op
		if i < len(first) {
			o = first[i]
		} else {
			w := rng.IntN(total)
			for _, c := range ops {
				if w -= weight[c]; w < 0 {
					o = c
					break
				}
			}
		}
		s := step{Iter: i, Op: o, Fault: faults[rng.IntN(len(faults))], Seed: rng.Uint64()}
		// Etcd work happens on the etcd member; files on every node.
		s.Node = nodes[0]
		if o == opBackup || o == opFileRestore {
			s.Node = nodes[rng.IntN(len(nodes))]
		}
		s.Anchored = rng.IntN(2) == 0 && anchors[o] != nil
		span := typical[o]
		if s.Anchored {
			span = afterAnchor[o]
		}
		s.After = time.Duration(rng.Int64N(int64(span)))
		s.Bytes = 1 + rng.Int64N(typicalBytes[o])
		s.Outage = time.Duration(500+rng.IntN(2500)) * time.Millisecond
		out = append(out, s)
	}
	return out
}

// The replay promise: the same seed gives the same steps, and a shorter
// run is a prefix of a longer one.
func TestScheduleIsAPureFunctionOfTheSeed(t *testing.T) {
	nodes := []string{"server-1", "agent-1"}
	a, b := schedule(42, 50, nodes), schedule(42, 50, nodes)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two schedules of seed 42 differ")
	}
	if short := schedule(42, 7, nodes); !reflect.DeepEqual(short, a[:7]) {
		t.Errorf("the 7-step schedule is not the 50-step one's prefix:\n%v\n%v", short, a[:7])
	}
	if reflect.DeepEqual(a, schedule(43, 50, nodes)) {
		t.Error("seeds 42 and 43 give the same schedule")
	}
	seen := map[op]bool{}
	for _, s := range a[:len(ops)] {
		seen[s.Op] = true
	}
	if len(seen) != len(ops) {
		t.Errorf("the first %d steps cover %v, want every operation", len(ops), seen)
	}
}
