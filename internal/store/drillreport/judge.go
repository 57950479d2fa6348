package drillreport

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Judge computes the RTO, the RPO of each layer and the verdict from the
// parts, against rto and rpo (0: no target). A recovery restores the
// datastore, files, databases and buckets in parallel and then runs the
// user's checks, so the RTO is the longest part's restore steps plus
// every check; the drill's own checks and cleanup are not in it.
func (r *Report) Judge(rto, rpo time.Duration) {
	r.RTO = RTO{Complete: true}
	r.RPO = nil
	r.Reasons = nil
	if !r.Ended.IsZero() {
		r.WallSeconds = r.Ended.Sub(r.Started).Seconds()
	}
	var crit *Part
	ran := 0
	for i := range r.Parts {
		p := &r.Parts[i]
		p.RestoreSeconds = 0
		if !p.Ran() {
			continue
		}
		ran++
		for _, s := range p.Steps {
			if s.Restore {
				p.RestoreSeconds += s.Seconds()
			}
		}
		if !p.OK {
			r.RTO.Complete = false
			r.Reasons = append(r.Reasons, p.failure())
			continue
		}
		if crit == nil || p.RestoreSeconds > crit.RestoreSeconds {
			crit = p
		}
	}
	if crit != nil {
		r.RTO.Part = crit.Key()
		for _, s := range crit.Steps {
			if s.Restore {
				r.RTO.Path = append(r.RTO.Path, PathStep{Part: crit.Key(), Step: s.Name, Seconds: s.Seconds()})
			}
		}
		r.RTO.Seconds = crit.RestoreSeconds
	}
	for _, p := range r.Parts {
		if !p.Ran() {
			continue
		}
		for _, c := range p.Checks {
			sec := float64(c.DurationMS) / 1000
			r.RTO.Path = append(r.RTO.Path, PathStep{Part: p.Key(), Step: "check " + c.Name, Seconds: sec})
			r.RTO.Seconds += sec
		}
	}
	if r.Interrupted {
		r.Reasons = append([]string{"interrupted: the drill was stopped before every part finished"}, r.Reasons...)
	}
	if ran == 0 {
		r.Reasons = append(r.Reasons, "nothing was rehearsed: no part could run (see the notes)")
	}
	if rto > 0 && r.RTO.Seconds > rto.Seconds() {
		r.Reasons = append(r.Reasons, fmt.Sprintf("RTO %s is over the target %s (critical path: %s)", seconds(r.RTO.Seconds), rto, r.RTO.Part))
	}
	for _, p := range r.Parts {
		if !p.Ran() || !p.OK {
			continue
		}
		if p.RecoveryPoint == nil {
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s on %s: the rehearsal reported no recovery point, so its RPO is unknown", p.Key(), p.Node))
			continue
		}
		age := r.Started.Sub(*p.RecoveryPoint).Seconds()
		ok := rpo <= 0 || age <= rpo.Seconds()
		r.RPO = append(r.RPO, RPO{Layer: p.Layer, Name: p.Name, RecoveryPoint: *p.RecoveryPoint, Seconds: age, OK: ok})
		if !ok {
			r.Reasons = append(r.Reasons, fmt.Sprintf("RPO of %s is %s (newest restorable point %s), over the target %s", p.Key(), seconds(age), p.RecoveryPoint.UTC().Format(time.RFC3339), rpo))
		}
	}
	var notRun []string
	for _, p := range r.Parts {
		if !p.Ran() {
			notRun = append(notRun, fmt.Sprintf("not run: %s: %s", p.Key(), p.NotRun))
		}
	}
	// Judging again does not repeat them; the caller's notes stay.
	r.Notes = append(slices.DeleteFunc(r.Notes, func(n string) bool { return slices.Contains(notRun, n) }), notRun...)
	r.Passed = len(r.Reasons) == 0
}

// failure is a failed part's reason: its problems, else its error, else
// its failed steps.
func (p Part) failure() string {
	where := p.Key()
	if p.Node != "" {
		where += " on " + p.Node
	}
	var why []string
	switch {
	case len(p.Problems) > 0:
		why = p.Problems
	case p.Error != "":
		why = []string{p.Error}
	default:
		for _, s := range p.Steps {
			if !s.OK {
				why = append(why, s.Name+": "+s.Error)
			}
		}
	}
	if len(why) == 0 {
		why = []string{"failed without saying why"}
	}
	return where + ": " + strings.Join(why, "; ")
}

// seconds prints a duration for people: 1m32s, 4.2s.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// Human prints seconds for people, as the reports do.
func Human(s float64) string { return seconds(s) }
