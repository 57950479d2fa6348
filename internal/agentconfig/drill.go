package agentconfig

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Drill configures kubectl dr drill and kubectl dr recover: the targets a
// drill is judged by, when drills run unattended, and the user's checks,
// which the drill runs against its scratch copies and recover against the
// recovered platform.
type Drill struct {
	// Schedule is a cron expression for unattended drills run by the etcd
	// leader's agent (a quarterly one is "0 3 1 */3 *"); default "off".
	Schedule string `json:"schedule,omitempty"`
	// RTOTarget and RPOTarget are what a drill must measure to pass: the
	// time a recovery of the backup would take on these nodes, and the age
	// of each layer's newest restorable point (Go durations; default 30m
	// and 5m, as the runbooks promise).
	RTOTarget string `json:"rtoTarget,omitempty"`
	RPOTarget string `json:"rpoTarget,omitempty"`
	// Checks are the user's health checks.
	Checks []Check `json:"checks,omitempty"`
}

// Check is one health check: an SQL query against a WAL source's database
// with the value it must return, or an HTTP URL that must answer with a
// status. The drill runs the SQL checks against its scratch database
// (HTTP checks need the live platform: recover runs them, the drill lists
// them as not run).
type Check struct {
	// Name names the check in reports.
	Name string `json:"name"`
	// Postgres names the WAL source whose database the query runs in.
	Postgres string `json:"postgres,omitempty"`
	// Database defaults to postgres.
	Database string `json:"database,omitempty"`
	// Query is one SQL statement returning one row with one column;
	// Expect is that value as psql -At prints it ("t", "42").
	Query  string `json:"query,omitempty"`
	Expect string `json:"expect,omitempty"`
	// HTTP is a URL to GET; ExpectStatus defaults to 200.
	HTTP         string `json:"http,omitempty"`
	ExpectStatus int    `json:"expectStatus,omitempty"`
	// Timeout bounds the check (a Go duration, default 30s).
	Timeout string `json:"timeout,omitempty"`
}

// Drill defaults.
const (
	DefaultDrillRTOTarget = 30 * time.Minute
	DefaultDrillRPOTarget = 5 * time.Minute
	DefaultCheckTimeout   = 30 * time.Second
)

// CheckTimeout is a completed check's timeout.
func (c Check) CheckTimeout() time.Duration {
	d, err := time.ParseDuration(c.Timeout)
	if err != nil || d <= 0 {
		return DefaultCheckTimeout
	}
	return d
}

var checkNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

func (c *Config) completeDrill() error {
	d := &c.Drill
	if d.Schedule == "" {
		d.Schedule = "off"
	}
	if d.Schedule != "off" {
		if _, err := ParseSchedule(d.Schedule); err != nil {
			return fmt.Errorf("drill.schedule: %w", err)
		}
	}
	for _, t := range []struct {
		key string
		v   *string
		def time.Duration
	}{{"drill.rtoTarget", &d.RTOTarget, DefaultDrillRTOTarget}, {"drill.rpoTarget", &d.RPOTarget, DefaultDrillRPOTarget}} {
		if *t.v == "" {
			*t.v = t.def.String()
		}
		if err := checkTarget(t.key, *t.v); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i := range d.Checks {
		ch := &d.Checks[i]
		key := fmt.Sprintf("drill.checks[%d]", i)
		switch {
		case !checkNameRE.MatchString(ch.Name):
			return fmt.Errorf("%s.name %q: use letters, digits, '.', '_' and '-'", key, ch.Name)
		case seen[ch.Name]:
			return fmt.Errorf("drill.checks: %q appears twice", ch.Name)
		case (ch.Query == "") == (ch.HTTP == ""):
			return fmt.Errorf("drill.checks %s: set either query (with postgres) or http", ch.Name)
		}
		seen[ch.Name] = true
		if ch.Query != "" {
			if ch.Postgres == "" {
				return fmt.Errorf("drill.checks %s: query needs postgres: the WAL source whose database it runs in", ch.Name)
			}
			// The source may be on another node's agent: each agent's
			// file names only its own spools, so an unknown name is not
			// refused here. The plugin checks it against every agent.
			if ch.Database == "" {
				ch.Database = "postgres"
			}
			if ch.ExpectStatus != 0 {
				return fmt.Errorf("drill.checks %s: expectStatus is for http checks", ch.Name)
			}
		}
		if ch.HTTP != "" {
			u, err := url.Parse(ch.HTTP)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("drill.checks %s: http %q: want an http:// or https:// URL", ch.Name, ch.HTTP)
			}
			if ch.Postgres != "" || ch.Expect != "" {
				return fmt.Errorf("drill.checks %s: postgres and expect are for query checks", ch.Name)
			}
			if ch.ExpectStatus == 0 {
				ch.ExpectStatus = 200
			}
			if ch.ExpectStatus < 100 || ch.ExpectStatus > 599 {
				return fmt.Errorf("drill.checks %s: expectStatus %d: want an HTTP status", ch.Name, ch.ExpectStatus)
			}
		}
		if ch.Timeout != "" {
			if t, err := time.ParseDuration(ch.Timeout); err != nil || t <= 0 {
				return fmt.Errorf("drill.checks %s: timeout %q: want a positive duration such as 30s", ch.Name, ch.Timeout)
			}
		}
	}
	return nil
}
