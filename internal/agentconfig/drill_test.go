package agentconfig

import (
	"strings"
	"testing"
)

func TestDrillConfig(t *testing.T) {
	const head = "nodeName: n1\ntls: {ca: /ca, cert: /c, key: /k}\n"
	c, err := Parse([]byte(head+`drill:
  checks:
    - {name: orders, postgres: pg-main, database: app, query: "select count(*) > 0 from orders", expect: t}
    - {name: web, http: "https://app.example/healthz"}
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Drill
	if d.Schedule != "off" || d.RTOTarget != "30m0s" || d.RPOTarget != "5m0s" {
		t.Errorf("defaults: schedule %q rto %q rpo %q", d.Schedule, d.RTOTarget, d.RPOTarget)
	}
	if d.Checks[0].Database != "app" || d.Checks[1].ExpectStatus != 200 || d.Checks[1].CheckTimeout().String() != "30s" {
		t.Errorf("check defaults: %+v", d.Checks)
	}

	for _, tt := range []struct{ yaml, wantErr string }{
		{"drill: {schedule: 'every day'}", "drill.schedule"},
		{"drill: {rtoTarget: soon}", `drill.rtoTarget "soon"`},
		{"drill: {checks: [{name: a, query: 'select 1'}]}", "query needs postgres"},
		{"drill: {checks: [{name: a, postgres: p, query: 'select 1', http: 'http://x'}]}", "set either query"},
		{"drill: {checks: [{name: a}]}", "set either query"},
		{"drill: {checks: [{name: a, http: 'ftp://x'}]}", "want an http:// or https:// URL"},
		{"drill: {checks: [{name: a, http: 'http://x'}, {name: a, http: 'http://y'}]}", `"a" appears twice`},
		{"drill: {checks: [{name: 'a b', http: 'http://x'}]}", "drill.checks[0].name"},
		{"drill: {checks: [{name: a, http: 'http://x', expectStatus: 42}]}", "expectStatus 42"},
	} {
		_, err := Parse([]byte(head+tt.yaml+"\n"), "test")
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want %q", tt.yaml, err, tt.wantErr)
		}
	}
}
