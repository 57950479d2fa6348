package restic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Policy is a forget policy (restic's --keep-* flags).
type Policy struct {
	KeepLast, KeepHourly, KeepDaily, KeepWeekly, KeepMonthly int
}

func (p Policy) args() []string {
	var a []string
	add := func(flag string, n int) {
		if n > 0 {
			a = append(a, flag, strconv.Itoa(n))
		}
	}
	add("--keep-last", p.KeepLast)
	add("--keep-hourly", p.KeepHourly)
	add("--keep-daily", p.KeepDaily)
	add("--keep-weekly", p.KeepWeekly)
	add("--keep-monthly", p.KeepMonthly)
	return a
}

// ForgetIDs forgets the snapshots named, and prunes their data when asked.
func (r *Repo) ForgetIDs(ctx context.Context, ids []string, prune bool) error {
	if len(ids) == 0 {
		return nil
	}
	args := []string{}
	if prune {
		args = append(args, "--prune")
	}
	args = append(args, "--")
	args = append(args, ids...)
	return r.run(ctx, "forget", args, nil)
}

// ForgetPolicy applies p to the snapshots of host carrying tag, grouped by
// host and paths, and returns the ids removed.
func (r *Repo) ForgetPolicy(ctx context.Context, host, tag string, p Policy, prune bool) ([]string, error) {
	keep := p.args()
	if len(keep) == 0 {
		return nil, fmt.Errorf("restic forget: an empty retention policy would keep everything")
	}
	args := append([]string{"--host", host, "--tag", tag, "--group-by", "host,paths"}, keep...)
	if prune {
		args = append(args, "--prune")
	}
	var removed []string
	err := r.run(ctx, "forget", args, func(line []byte) {
		var groups []struct {
			Remove []Snapshot `json:"remove"`
		}
		if json.Unmarshal(line, &groups) == nil {
			for _, g := range groups {
				for _, s := range g.Remove {
					removed = append(removed, s.ID)
				}
			}
		}
	})
	return removed, err
}

// CheckResult is what restic check found.
type CheckResult struct {
	Errors       int
	Messages     []string
	SuggestIndex bool
}

// Check verifies the repository's structure and, with subset ("10%",
// "1/5"), reads back that much of the data.
func (r *Repo) Check(ctx context.Context, subset string) (*CheckResult, error) {
	var args []string
	if subset != "" {
		args = append(args, "--read-data-subset", subset)
	}
	res := &CheckResult{}
	err := r.run(ctx, "check", args, func(line []byte) {
		var m struct {
			Type         string `json:"message_type"`
			NumErrors    int    `json:"num_errors"`
			Message      string `json:"message"`
			SuggestIndex bool   `json:"suggest_repair_index"`
		}
		if json.Unmarshal(line, &m) != nil {
			return
		}
		switch m.Type {
		case "summary":
			res.Errors = m.NumErrors
			res.SuggestIndex = m.SuggestIndex
		case "error":
			res.Messages = append(res.Messages, m.Message)
		}
	})
	// restic counts a lock it could not take as one error in its summary:
	// that is not a finding about the repository, and the caller waits for
	// the lock or removes it if stale.
	if err != nil && (res.Errors == 0 || errors.Is(err, ErrLocked)) {
		return nil, err
	}
	// restic writes each problem it finds to stderr: the user is told
	// what they are, not only how many.
	var rerr *Error
	if errors.As(err, &rerr) {
		res.Messages = append(res.Messages, rerr.Errors...)
		if len(res.Messages) == 0 && rerr.Message != "" {
			res.Messages = append(res.Messages, rerr.Message)
		}
	}
	return res, nil
}
