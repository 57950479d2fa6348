package etcdrestore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// fakeBarrier answers the hold calls of one server with err, once every
// server of the test has been called (so the calls must be parallel).
type fakeBarrier struct {
	agentv1.RestoreBarrierServiceClient
	err    error
	called *sync.WaitGroup
	got    []string
}

func (f *fakeBarrier) wait(ctx context.Context, planID string) error {
	f.got = append(f.got, planID)
	f.called.Done()
	all := make(chan struct{})
	go func() { f.called.Wait(); close(all) }()
	select {
	case <-all:
		return f.err
	case <-time.After(10 * time.Second):
		return status.Error(codes.DeadlineExceeded, "the servers were called one after another")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeBarrier) HoldStartRestorePlan(ctx context.Context, in *agentv1.HoldStartRestorePlanRequest, _ ...grpc.CallOption) (*agentv1.HoldStartRestorePlanResponse, error) {
	return &agentv1.HoldStartRestorePlanResponse{}, f.wait(ctx, in.PlanId)
}

func (f *fakeBarrier) HoldRestorePlan(ctx context.Context, in *agentv1.HoldRestorePlanRequest, _ ...grpc.CallOption) (*agentv1.HoldRestorePlanResponse, error) {
	return &agentv1.HoldRestorePlanResponse{}, f.wait(ctx, in.PlanId)
}

// Both holds call every server at once and name each server that could
// not hold its part, an old agent with what to do.
func TestHoldsCallEveryServerAndJoinTheirErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hold   func(context.Context, []*agentclient.Node, string) error
		cannot string
		what   string
	}{
		{"start", holdStart, "node s2: its agent cannot hold k3s's start until the volumes' files are restored: upgrade the agents", "node s3: hold the part before its start: "},
		{"barrier", hold, "node s2: its agent cannot hold its member until every member stopped: upgrade the agents", "node s3: hold the part at the barrier: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := map[string]error{"s1": nil, "s2": status.Error(codes.Unimplemented, "unknown method"), "s3": status.Error(codes.NotFound, "no plan restore-1")}
			var called sync.WaitGroup
			var servers []*agentclient.Node
			fakes := map[string]*fakeBarrier{}
			for _, n := range []string{"s1", "s2", "s3"} {
				called.Add(1)
				fakes[n] = &fakeBarrier{err: errs[n], called: &called}
				servers = append(servers, &agentclient.Node{Target: agentclient.Target{Node: n}, Conn: &agentclient.Conn{Barrier: fakes[n]}})
			}
			err := tc.hold(t.Context(), servers, "restore-1")
			if err == nil {
				t.Fatal("no error, want s2's and s3's")
			}
			for _, want := range []string{tc.cannot, tc.what} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s1") {
				t.Errorf("error %q names s1, which held its part", err)
			}
			for n, f := range fakes {
				if len(f.got) != 1 || f.got[0] != "restore-1" {
					t.Errorf("%s was asked to hold %v, want restore-1 once", n, f.got)
				}
			}
		})
	}
}

// A datastore restore whose servers all ended at the start hold is "not
// started" (the datastore in place); a failure anywhere else is not.
func TestHeldOnly(t *testing.T) {
	done, failed := agentv1.RestoreStep_STATE_DONE, agentv1.RestoreStep_STATE_FAILED
	oc := func(err error, steps ...*agentv1.RestoreStep) *outcome {
		o := &outcome{err: err, steps: map[string]*agentv1.RestoreStep{}}
		for _, s := range steps {
			o.steps[s.Name] = s
		}
		return o
	}
	boom := status.Error(codes.Aborted, "not started")
	for _, tc := range []struct {
		name     string
		outcomes []*outcome
		want     bool
	}{
		{"every server held", []*outcome{
			oc(boom, ev("cluster-reset", done), ev(stepWaitLayers, failed)),
			oc(boom, ev("put-bootstrap-files", done), ev(stepWaitLayers, failed)),
		}, true},
		{"one failed before the hold", []*outcome{
			oc(boom, ev("cluster-reset", done), ev(stepWaitLayers, failed)),
			oc(boom, ev("put-bootstrap-files", failed)),
		}, false},
		{"none failed", []*outcome{oc(nil, ev(stepWaitLayers, done))}, false},
		{"lost agent", []*outcome{oc(boom, ev("cluster-reset", done))}, false},
	} {
		if got := heldOnly(tc.outcomes); got != tc.want {
			t.Errorf("%s: heldOnly %v, want %v", tc.name, got, tc.want)
		}
	}
	err := &NotStartedError{PlanID: "restore-1", Reset: "s1", Reason: errors.New("files abcd (node s2) failed")}
	for _, want := range []string{"restored and in place on every server (plan restore-1)", "k3s was not started", "files abcd (node s2) failed", "start k3s on s1 and then on the others"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}
