package cmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// writeSnapshot seeds a snapshot record where the agent writes it once
// the data is verified, signed as the node's enrolled agent signs it:
// etcd/<node>/<name>.json and its .sig.
func (e *env) writeSnapshot(s *dbsnap.Snapshot) {
	e.t.Helper()
	s.Version = drstore.FormatVersion
	data, err := json.Marshal(s)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := signature.Put(context.Background(), e.store, e.signer(s.Node), dbsnap.MetaKey(s.Node, s.Name), data); err != nil {
		e.t.Fatal(err)
	}
}

// signer signs records as node's agent does, with its certificate.
func (e *env) signer(node string) *signature.Signer {
	e.t.Helper()
	pair, err := e.agentTLS(node).KeyPair()
	if err != nil {
		e.t.Fatal(err)
	}
	sign, err := signature.FromKeyPair(pair)
	if err != nil {
		e.t.Fatal(err)
	}
	return sign
}

func seedSnapshots(e *env) {
	now := time.Now().UTC()
	e.writeSnapshot(&dbsnap.Snapshot{Name: "old-server-1-1", Node: "server-1", Created: now.Add(-3 * time.Hour), Revision: 100, Size: 1 << 20, Uploaded: true, Compression: "zstd"})
	e.writeSnapshot(&dbsnap.Snapshot{Name: "new-server-2-2", Node: "server-2", Created: now.Add(-time.Hour), Revision: 200, Size: 2 << 20, Uploaded: true, Compression: "zstd", Encryption: "age"})
}

func TestEtcdSnapshotListThroughAnAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	seedSnapshots(e)

	r := e.run("etcd", "snapshot", "ls")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := firstColumn(r.stdout); strings.Join(got, ",") != "new-server-2-2,old-server-1-1" {
		t.Errorf("snapshots listed %v, want newest first\n%s", got, r.stdout)
	}
	rs := rows(t, r.stdout)
	if got := rs["new-server-2-2"]; len(got) < 9 || got[1] != "server-2" || got[5] != "200" || got[7] != "yes" || got[8] != "(age)" {
		t.Errorf("new-server-2-2 row %v", got)
	}
	if got := rs["old-server-1-1"]; len(got) < 8 || got[1] != "server-1" || got[5] != "100" || got[7] != "no" {
		t.Errorf("old-server-1-1 row %v", got)
	}
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing: the agent listed the store", r.stderr)
	}

	r = e.run("etcd", "snapshot", "ls", "--node", "server-1", "-o", "json")
	var list printers.EtcdSnapshotList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("%v\n%s", err, r)
	}
	if list.Kind != "EtcdSnapshotList" || len(list.Items) != 1 || list.Items[0].Name != "old-server-1-1" || list.Items[0].Revision != 100 {
		t.Errorf("--node server-1 -o json: %+v", list)
	}

	r = e.run("etcd", "snapshot", "describe", "new-server-2-2")
	if r.code != 0 || !strings.Contains(r.stdout, "kind: EtcdSnapshot\n") || !strings.Contains(r.stdout, "name: new-server-2-2\n") || !strings.Contains(r.stdout, "revision: 200\n") {
		t.Errorf("describe: want the snapshot as YAML\n%s", r)
	}
	r = e.run("etcd", "snapshot", "describe", "no-such")
	if r.code != 1 || !strings.Contains(r.stderr, "error: no etcd snapshot named \"no-such\": `kubectl dr etcd snapshot ls` lists them") {
		t.Errorf("describe of a missing snapshot: want exit 1\n%s", r)
	}
}

// With no agent answering, ls reads the store directly and says so.
func TestEtcdSnapshotListReadsTheStoreWhenNoAgentAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deadAgent("server-1")
	seedSnapshots(e)

	r := e.run("etcd", "snapshot", "ls")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := firstColumn(r.stdout); strings.Join(got, ",") != "new-server-2-2,old-server-1-1" {
		t.Errorf("snapshots listed %v\n%s", got, r.stdout)
	}
	if !strings.Contains(r.stderr, "no agent could list the store; read "+e.store.String()+" directly\n") {
		t.Errorf("stderr does not say the store was read directly:\n%s", r.stderr)
	}

	e.noStore = true
	r = e.run("etcd", "snapshot", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "error: cannot list etcd snapshots: read the store directly: no store configured") {
		t.Errorf("no agent and no store: want exit 1\n%s", r)
	}
}

func TestEtcdSnapshotListEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)

	r := e.run("etcd", "snapshot", "ls")
	if r.code != 0 || r.stdout != "" || r.stderr != "No etcd snapshots found.\n" {
		t.Errorf("want the empty listing said on stderr\n%s", r)
	}
	r = e.run("etcd", "snapshot", "ls", "-o", "json")
	var list printers.EtcdSnapshotList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list.Items) != 0 || list.Kind != "EtcdSnapshotList" {
		t.Errorf("-o json: want an empty list\n%s", r)
	}
}

// A corrupt record in the store is named once, however many agents list
// the store, and the good snapshots are listed as ever.
func TestEtcdSnapshotListNamesAnUnusableRecordOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	e.agent("server-2", nil)
	seedSnapshots(e)
	bad := `{"name": "trunc`
	if _, err := e.store.Put(context.Background(), "etcd/server-1/broken.json", strings.NewReader(bad), int64(len(bad))); err != nil {
		t.Fatal(err)
	}
	r := e.run("etcd", "snapshot", "ls")
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := firstColumn(r.stdout); strings.Join(got, ",") != "new-server-2-2,old-server-1-1" {
		t.Errorf("snapshots listed %v, want both good ones\n%s", got, r.stdout)
	}
	if n := strings.Count(r.stderr, "warning: skipped etcd/server-1/broken.json"); n != 1 {
		t.Errorf("stderr names the broken record %d times, want once:\n%s", n, r.stderr)
	}
}
