package printers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
)

func TestBackupSetListShowsPartsAndFailures(t *testing.T) {
	start := time.Now().Add(-2 * time.Hour)
	set := &backupset.Set{
		ID: "nightly", Started: start, Finished: start.Add(90 * time.Second),
		Etcd: &backupset.EtcdPart{Node: "server-1", Snapshot: "nightly-server-1-1700000000"},
		Files: []backupset.FilePart{
			{Node: "server-1", SnapshotID: "abc", Files: 1200, Bytes: 3 << 20, PVCs: []string{"shop/data-0"}},
			{Node: "server-2", Error: "node vanished"},
		},
	}
	set.Decide()
	if set.Phase != backupset.PartiallyFailed {
		t.Fatalf("phase %s, want PartiallyFailed", set.Phase)
	}
	list := NewBackupSetList()
	list.Items = append(list.Items, NewBackupSet(set))
	var out bytes.Buffer
	if err := Print(&out, Wide, list); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row:\n%s", out.String())
	}
	for _, want := range []string{"nightly", "PartiallyFailed", "120m", "nightly-server-1-1700000000", "1/2 nodes, 1200 files", "3.0 MiB", "1m30s", "server-1:shop/data-0", "server-2: node vanished"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	out.Reset()
	if err := Print(&out, JSON, list); err != nil {
		t.Fatal(err)
	}
	var back BackupSetList
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Kind != "BackupSetList" || back.Items[0].Files[1].Error != "node vanished" {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

func TestBackupSetPhases(t *testing.T) {
	for _, tc := range []struct {
		set  backupset.Set
		want string
	}{
		{backupset.Set{Files: []backupset.FilePart{{Node: "a", SnapshotID: "x"}}}, backupset.Completed},
		{backupset.Set{Files: []backupset.FilePart{{Node: "a", Error: "e"}}}, backupset.Failed},
		{backupset.Set{Etcd: &backupset.EtcdPart{Error: "e"}, Files: []backupset.FilePart{{Node: "a", SnapshotID: "x"}}}, backupset.PartiallyFailed},
		{backupset.Set{Error: "interrupted", Files: []backupset.FilePart{{Node: "a", SnapshotID: "x"}}}, backupset.PartiallyFailed},
	} {
		tc.set.Decide()
		if tc.set.Phase != tc.want {
			t.Errorf("%+v: phase %s, want %s", tc.set, tc.set.Phase, tc.want)
		}
	}
}
