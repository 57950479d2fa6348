package etcdrestore

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/printers"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

// PreflightChecks are the checks --skip-preflight takes.
var PreflightChecks = []string{"token", "k3s-version", "encryption-config", "disk"}

// ErrPreflight is returned when a check failed on a server.
var ErrPreflight = fmt.Errorf("preflight failed")

// Preflight asks every server to check the snapshot against itself
// (RecoverService.Preflight: token, k3s version, encryption config,
// disk), prints one row per server and check, and fails when a check not
// in skip failed, before anything stops. newHost: the restore puts the
// files kept with the snapshot in place, so those are checked. An agent
// too old to check is warned about, not refused.
func Preflight(ctx context.Context, out, errOut io.Writer, servers []*agentclient.Node, ref *agentv1.SnapshotRef, newHost bool, skip []string) error {
	resps := make([]*agentv1.PreflightResponse, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, n := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = n.Conn.Recover().Preflight(ctx, &agentv1.PreflightRequest{Snapshot: ref, NewHost: newHost})
		}()
	}
	wg.Wait()
	tw := printers.GetNewTabWriter(out)
	fmt.Fprintln(tw, "NODE\tCHECK\tSTATE\tDETAIL")
	var failed, problems []string
	for i, n := range servers {
		if err := errs[i]; err != nil {
			if status.Code(err) == codes.Unimplemented {
				fmt.Fprintf(errOut, "warning: node %s's agent has no preflight checks: upgrade the agents\n", n.Node)
				continue
			}
			problems = append(problems, fmt.Sprintf("node %s: %s", n.Node, agentclient.Explain(err)))
			continue
		}
		for _, c := range resps[i].Checks {
			state := c.State
			if state == "failed" && slices.Contains(skip, c.Name) {
				state = "failed (skipped)"
			} else if state == "failed" {
				failed = append(failed, fmt.Sprintf("node %s: %s: %s\n    fix: %s", n.Node, c.Name, c.Detail, c.Fix))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, c.Name, state, c.Detail)
		}
	}
	tw.Flush()
	if len(problems) > 0 {
		return fmt.Errorf("nothing was stopped: the preflight could not run:\n  %s", strings.Join(problems, "\n  "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w, nothing was stopped:\n  %s\n(--skip-preflight CHECK restores anyway, at your risk)", ErrPreflight, strings.Join(failed, "\n  "))
	}
	return nil
}
