package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

func scheduleServer(t *testing.T, storeDir string) *Server {
	t.Helper()
	cfg := &agentconfig.Config{NodeName: "n1", DataDir: t.TempDir(), StateDir: t.TempDir(), ClusterID: "c1",
		TLS:   nodeTLS(t, "n1"),
		Store: objstore.Config{URL: "file://" + storeDir}, Restic: agentconfig.Restic{Binary: "/nonexistent/restic"},
		Drill: agentconfig.Drill{Schedule: "off", RTOTarget: "30m", RPOTarget: "5m"}}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nodeTLS is a CA and a certificate it issued for node, as an enrolled
// agent holds: what signs the records the agent writes.
func nodeTLS(t *testing.T, node string) mtls.Files {
	t.Helper()
	dir := t.TempDir()
	ca, caPair, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(pki.LeafOptions{CommonName: pki.NodeDNSName(node), DNSNames: pki.NodeDNSNames(node), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	files := mtls.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key")}
	if err := os.WriteFile(files.CA, caPair.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kp.WriteFiles(files.Cert, files.Key); err != nil {
		t.Fatal(err)
	}
	return files
}

func gauge(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	families, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A scheduled drill plans from the store on its own node and keeps the
// same report as kubectl dr drill, run by "schedule on NODE": a layer
// with nothing to restore fails it, named.
func TestScheduledDrillKeepsItsReport(t *testing.T) {
	ctx := context.Background()
	storeDir := t.TempDir()
	s := scheduleServer(t, storeDir)
	if _, err := s.store.Put(ctx, walobj.Key("pg", "000000010000000000000001"), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	rep, err := s.scheduledDrill(ctx, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	s.metrics.observeDrill(rep)
	stored, err := drillreport.Read(ctx, s.store, rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Runner != "schedule on n1" || stored.Passed || stored.Targets.RTO != "30m" {
		t.Errorf("stored report: runner %q, passed %v, targets %+v", stored.Runner, stored.Passed, stored.Targets)
	}
	want := []string{
		"etcd on n1: nothing to restore: no datastore snapshot in the store: take one with kubectl dr etcd snapshot save",
		"postgres/pg on n1: nothing to restore: no base backup of pg: take one with kubectl dr pg basebackup pg",
	}
	if strings.Join(stored.Reasons, "\n") != strings.Join(want, "\n") {
		t.Errorf("reasons:\n%s\nwant:\n%s", strings.Join(stored.Reasons, "\n"), strings.Join(want, "\n"))
	}
	if got := gauge(t, s, "dr_drill_last_success_timestamp_seconds"); got != 0 {
		t.Errorf("last success %v after a failed drill, want 0", got)
	}
	if got := gauge(t, s, "dr_drill_last_rto_seconds"); got != 0 {
		t.Errorf("last RTO %v, want the failed drill's 0", got)
	}
}

// The drill gauges follow the newest report in the store, whoever ran it.
func TestDrillMetricsFromTheStore(t *testing.T) {
	ctx := context.Background()
	storeDir := t.TempDir()
	s := scheduleServer(t, storeDir)
	ended := time.Now().UTC().Truncate(time.Second)
	rp := ended.Add(-90 * time.Second)
	rep := &drillreport.Report{ID: drillreport.NewID(ended.Add(-time.Minute)), Started: ended.Add(-time.Minute), Ended: ended, Passed: true,
		RTO: drillreport.RTO{Seconds: 42, Complete: true}, RPO: []drillreport.RPO{{Layer: "etcd", RecoveryPoint: rp, Seconds: 30, OK: true}, {Layer: "files", Seconds: 75, OK: true}}}
	if err := drillreport.Write(ctx, s.store, rep, []byte("<html></html>"), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, s, "dr_drill_last_success_timestamp_seconds") != float64(ended.Unix()) {
		if time.Now().After(deadline) {
			t.Fatalf("the drill in the store never reached the metrics")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rto, rpo := gauge(t, s, "dr_drill_last_rto_seconds"), gauge(t, s, "dr_drill_last_rpo_seconds"); rto != 42 || rpo != 75 {
		t.Errorf("RTO %v, RPO %v; want 42 and the worst layer's 75", rto, rpo)
	}
}

// A scheduled drill runs without the plugin and so without the snapshot
// key: an encrypted snapshot's stored object is checked against its
// checksum, and the part is reported not rehearsed with what to do,
// never as passed.
func TestScheduledDrillWithoutTheKeyDoesNotClaimTheDatastore(t *testing.T) {
	ctx := context.Background()
	storeDir := t.TempDir()
	s := scheduleServer(t, storeDir)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("snapshot "), 512)
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	snap := &dbsnap.Snapshot{Name: "sched-n1-1", Node: "n1", Created: time.Now().UTC().Add(-time.Minute).Truncate(time.Second), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if err := dbsnap.Put(ctx, s.store, snap, file, id.Recipient(), s.recordSigner()); err != nil {
		t.Fatal(err)
	}
	rep, err := s.scheduledDrill(ctx, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	var etcd *drillreport.Part
	for i := range rep.Parts {
		if rep.Parts[i].Layer == "etcd" {
			etcd = &rep.Parts[i]
		}
	}
	if etcd == nil {
		t.Fatalf("no etcd part in %+v", rep.Parts)
	}
	if etcd.Ran() || !strings.Contains(etcd.NotRun, "Rehearse it with kubectl dr drill, which brings the snapshot key") {
		t.Errorf("etcd part: not run %q; want it not rehearsed, saying what to do", etcd.NotRun)
	}
	if len(etcd.Steps) == 0 || etcd.Steps[0].Name != "fetch" || !etcd.Steps[0].OK {
		t.Errorf("etcd part steps %+v; want the stored object checked", etcd.Steps)
	}
	if rep.Passed {
		t.Errorf("the drill passed, rehearsing nothing of the datastore: reasons %q notes %q", rep.Reasons, rep.Notes)
	}
	noted := false
	for _, n := range rep.Notes {
		noted = noted || strings.HasPrefix(n, "not run: etcd/"+snap.Name)
	}
	if !noted {
		t.Errorf("notes %q; want the etcd part named as not run", rep.Notes)
	}
}

// cancelOnGet calls the drill off when it reads the snapshot's data, as an
// agent's reload or stop does mid-drill.
type cancelOnGet struct {
	objstore.Store
	key    string
	cancel context.CancelFunc
}

func (c cancelOnGet) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == c.key {
		c.cancel()
		return nil, ctx.Err()
	}
	return c.Store.Get(ctx, key)
}

// A scheduled drill the agent calls off is saved as INTERRUPTED, not as a
// failure of the backups, and the job says so.
func TestScheduledDrillCalledOffIsInterrupted(t *testing.T) {
	storeDir := t.TempDir()
	s := scheduleServer(t, storeDir)
	data := bytes.Repeat([]byte("snapshot "), 512)
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	snap := &dbsnap.Snapshot{Name: "sched-n1-2", Node: "n1", Created: time.Now().UTC().Add(-time.Minute).Truncate(time.Second), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if err := dbsnap.Put(context.Background(), s.store, snap, file, nil, s.recordSigner()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.store = cancelOnGet{Store: s.store, key: snap.StoreKey, cancel: cancel}
	rep, err := s.scheduledDrill(ctx, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.Result() != "INTERRUPTED" || rep.Passed {
		t.Errorf("a drill called off: interrupted %v, result %s, passed %v; want INTERRUPTED", rep.Interrupted, rep.Result(), rep.Passed)
	}
	stored, err := drillreport.Read(context.Background(), s.store, rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Interrupted || len(stored.Reasons) == 0 || !strings.HasPrefix(stored.Reasons[0], "interrupted") {
		t.Errorf("the stored report: interrupted %v, reasons %q; want it saved as interrupted", stored.Interrupted, stored.Reasons)
	}
}
