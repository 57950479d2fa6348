package printers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestAgentStatusListTableAndJSON(t *testing.T) {
	l := NewAgentStatusList()
	l.Items = []AgentStatus{
		{Node: "server-1", Reachable: true, Roles: []string{"server", "etcd"}, AgentVersion: "v1", ResticVersion: "0.19.1",
			Etcd: &EtcdHealth{Healthy: true, Leader: true, Revision: 42, DBSize: 2048}},
		{Node: "gone", Error: "node gone: no agent found"},
	}
	var out bytes.Buffer
	if err := Print(&out, Table, l); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines, want header + 2:\n%s", len(lines), out.String())
	}
	if got := strings.Fields(lines[1]); strings.Join(got, " ") != "server-1 Ready server,etcd healthy true 42 v1 0.19.1" {
		t.Errorf("row 1 = %q", got)
	}
	if got := strings.Fields(lines[2]); strings.Join(got, " ") != "gone Unreachable - - - - - -" {
		t.Errorf("row 2 = %q", got)
	}

	out.Reset()
	if err := Print(&out, JSON, l); err != nil {
		t.Fatal(err)
	}
	var back AgentStatusList
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != "AgentStatusList" || back.APIVersion != "dr.kubectl.io/v1" || len(back.Items) != 2 || back.Items[0].Etcd.Revision != 42 {
		t.Errorf("JSON round trip lost data: %+v", back)
	}
}

func TestHumanBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := HumanBytes(in); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
