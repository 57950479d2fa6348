package recoveryplan

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/basebackup"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// TestLoadFromStore reads a file:// store laid out as the agents write it
// and picks from it.
func TestLoadFromStore(t *testing.T) {
	ctx := context.Background()
	root, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := root.Sub("cluster-1")
	put := func(key, data string) {
		t.Helper()
		if _, err := st.Put(ctx, key, strings.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	s := snap("s-1", 0)
	s.Created = time.Now().Add(-time.Hour)
	meta, _ := json.Marshal(s)
	put(dbsnap.MetaKey(s.Node, s.Name), string(meta))
	put(s.StoreKey, "data")
	if err := backupset.Write(ctx, st, &backupset.Set{ID: "backup-1", Started: time.Now().Add(-time.Hour), Finished: time.Now().Add(-time.Hour),
		Files: []backupset.FilePart{{Node: "server-1", SnapshotID: "abcd"}}}, nil); err != nil {
		t.Fatal(err)
	}
	b := base("bb-1", 0, 2)
	b.StopTime = time.Now().Add(-time.Hour)
	if err := basebackup.Write(ctx, st, b, nil); err != nil {
		t.Fatal(err)
	}
	put(walobj.Key("pg-main", seg(2, 0).Name), "x")
	put(walobj.Key("pg-main", seg(3, 0).Name), "x")
	put("wal/pg-main/00000001/00000001.history"+walobj.ObjectSuffix, "x")

	// The set is unsigned: a plan that may not take unsigned records
	// leaves it out, saying why; one that may, takes it.
	in, skipped, err := Load(ctx, st, nil, time.Now(), signature.Policy{})
	if err != nil || len(skipped) != 1 || skipped[0].Key != "sets/backup-1.json" || !strings.Contains(skipped[0].Reason.Error(), "is not signed") || len(in.Sets) != 0 {
		t.Errorf("strict: sets %v, skipped %v, %v; want the unsigned set skipped, named", in.Sets, skipped, err)
	}
	in, skipped, err = Load(ctx, st, nil, time.Now(), signature.Policy{AllowUnsigned: true})
	if err != nil || len(skipped) > 0 {
		t.Fatal(err, skipped)
	}
	if len(in.WAL) != 1 || len(in.WAL[0].Segments) != 2 || len(in.WAL[0].BaseBackups) != 1 {
		t.Fatalf("WAL = %+v", in.WAL)
	}
	p, err := Pick(in, Target{Time: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if e := byLayer(p, LayerEtcd, ""); e.What != "s-1" {
		t.Errorf("etcd = %+v", e)
	}
	if f := byLayer(p, LayerFiles, "server-1"); f.SnapshotID != "abcd" || f.BackupSet != "backup-1" {
		t.Errorf("files = %+v", f)
	}
	// The segments were stored just now, after the target: WAL covers it.
	if pg := byLayer(p, LayerPostgres, "pg-main"); pg.PGTime.IsZero() || pg.Missing {
		t.Errorf("postgres = %+v", pg)
	}
}
