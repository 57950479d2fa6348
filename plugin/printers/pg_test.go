package printers

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBaseBackupListTableAndWide(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	l := NewBaseBackupList()
	l.Items = []BaseBackup{{Source: "pg-main", Node: "server-1", ID: "20261121T100000Z", StartTime: t0, StopTime: t0.Add(time.Minute),
		StartLSN: "0/2000028", StopLSN: "0/2000100", Timeline: 1, SizeBytes: 3 << 20}}
	for _, tc := range []struct{ format, want string }{
		{Table, "pg-main 20261121T100000Z 2026-11-21T10:01:00Z 0/2000028..0/2000100 1 3.0 MiB"},
		{Wide, "pg-main 20261121T100000Z 2026-11-21T10:01:00Z 0/2000028..0/2000100 1 3.0 MiB 2026-11-21T10:00:00Z server-1"},
	} {
		var out bytes.Buffer
		if err := Print(&out, tc.format, l); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "SOURCE") {
			t.Fatalf("%s: want a header and one row:\n%s", tc.format, out.String())
		}
		if got := strings.Join(strings.Fields(lines[1]), " "); got != tc.want {
			t.Errorf("%s row = %q, want %q", tc.format, got, tc.want)
		}
	}
}
