package sqlitelab

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"

	_ "modernc.org/sqlite"
)

func saveSnapshot(t *testing.T, name string) printers.EtcdSnapshot {
	t.Helper()
	r := kubectlDR(t, "etcd", "snapshot", "save", "--name", name, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("kubectl dr etcd snapshot save: exit %d\n%s", r.Code, r.Stderr)
	}
	var snap printers.EtcdSnapshot
	if err := json.Unmarshal([]byte(r.Stdout), &snap); err != nil {
		t.Fatalf("snapshot JSON: %v\n%s", err, r.Stdout)
	}
	return snap
}

// deleteNamespace deletes ns and what is in it, as the namespace
// controller would (this API server runs without one): its configmaps,
// then the namespace, then its finalizer; it returns once the API server
// answers NotFound.
func deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	kubectl(t, "-n", ns, "delete", "configmaps", "--all")
	kubectl(t, "delete", "namespace", ns, "--wait=false")
	fin := filepath.Join(t.TempDir(), "finalize.json")
	os.WriteFile(fin, []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q},"spec":{"finalizers":[]}}`, ns)), 0o600)
	kubectl(t, "replace", "--raw", "/api/v1/namespaces/"+ns+"/finalize", "-f", fin)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r := labtest.Run(t, theLab, time.Minute, theLab.Bin.Kubectl, env(t), "get", "namespace", ns)
		if r.Code != 0 && strings.Contains(r.Stderr, "NotFound") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there: %s%s", ns, r.Stdout, r.Stderr)
		}
	}
}

// A k3s server on SQLite, through the plugin with its kubeconfig: a
// snapshot taken while kine runs, a namespace deleted, the preview naming
// it, the restore swapping state.db, and the namespace back through the
// kine-backed API server, with the previous database files kept aside.
func TestSQLiteSnapshotPreviewRestore(t *testing.T) {
	kubectl(t, "create", "namespace", "sq-kept")
	kubectl(t, "-n", "sq-kept", "create", "configmap", "kept", "--from-literal=v=1")
	kubectl(t, "create", "namespace", "sq-doomed")
	kubectl(t, "-n", "sq-doomed", "create", "configmap", "doomed", "--from-literal=v=1")

	snap := saveSnapshot(t, "before-delete")
	if snap.Datastore != "sqlite" || !snap.Uploaded || !snap.Encrypted() || snap.Revision == 0 {
		t.Fatalf("snapshot %+v: want an uploaded, encrypted sqlite snapshot with kine's revision", snap.Snapshot)
	}
	if b := snap.Bootstrap; b == nil || len(b.Files) == 0 || b.Files[0] != "server/token" {
		t.Errorf("bootstrap %+v: want the server token kept beside the snapshot", b)
	}
	r := kubectlDR(t, "etcd", "snapshot", "ls")
	if r.Code != 0 || !strings.Contains(r.Stdout, snap.Name) {
		t.Errorf("snapshot ls: exit %d, want a row for %s:\n%s%s", r.Code, snap.Name, r.Stdout, r.Stderr)
	}

	deleteNamespace(t, "sq-doomed")
	kubectl(t, "-n", "sq-kept", "create", "configmap", "after", "--from-literal=v=1")

	r = kubectlDR(t, "etcd", "restore", snap.Name, "--dry-run", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s", r.Code, r.Stderr)
	}
	var view printers.EtcdRestorePreview
	if err := json.Unmarshal([]byte(r.Stdout), &view); err != nil {
		t.Fatalf("preview JSON: %v\n%s", err, r.Stdout)
	}
	rows := map[string]printers.Impact{}
	for _, it := range view.Items {
		rows[it.GroupResource+"/"+it.Namespace] = it
	}
	if got := rows["namespaces/"].ReappearNames; !contains(got, "sq-doomed") {
		t.Errorf("namespaces reappearing %v, want sq-doomed (rows %+v)", got, view.Items)
	}
	if got := rows["configmaps/sq-doomed"].ReappearNames; !contains(got, "doomed") {
		t.Errorf("configmaps reappearing in sq-doomed %v, want doomed", got)
	}
	if got := rows["configmaps/sq-kept"].DisappearNames; !contains(got, "after") {
		t.Errorf("configmaps disappearing in sq-kept %v, want after", got)
	}
	r = kubectlDR(t, "etcd", "restore", snap.Name, "--dry-run")
	if r.Code != 0 || !regexp.MustCompile(`configmaps\s+sq-doomed\s+0\s+1\s+0`).MatchString(r.Stdout) {
		t.Errorf("preview table: exit %d, want the row 'configmaps sq-doomed 0 1 0':\n%s", r.Code, r.Stdout)
	}

	r = kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("kubectl dr etcd restore --yes:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 0 {
		t.Fatalf("restore: exit %d", r.Code)
	}
	plan := regexp.MustCompile(`plan (restore-[0-9]+):`).FindStringSubmatch(r.Stderr)
	if plan == nil {
		t.Fatal("no plan id in the output")
	}
	for _, want := range []string{"swap-state-db done", "wait-healthy done", "kine serving the restored state.db", "RTO"} {
		if !strings.Contains(r.Stderr+r.Stdout, want) {
			t.Errorf("restore output lacks %q", want)
		}
	}
	if out := kubectl(t, "-n", "sq-doomed", "get", "configmap", "doomed", "-o", "jsonpath={.data.v}"); out != "1" {
		t.Errorf("configmap sq-doomed/doomed after the restore: %q, want v=1", out)
	}
	if r := labtest.Run(t, theLab, time.Minute, theLab.Bin.Kubectl, env(t), "-n", "sq-kept", "get", "configmap", "after"); r.Code == 0 {
		t.Errorf("configmap sq-kept/after, made after the snapshot, is still there")
	}
	// The database from before the restore is aside, whole: it is the one
	// without sq-doomed.
	aside := server.StateDB + ".aside-" + plan[1]
	if ns := namespacesIn(t, aside); contains(ns, "sq-doomed") || !contains(ns, "sq-kept") {
		t.Errorf("%s holds namespaces %v: want the database from before the restore (sq-kept, no sq-doomed)", aside, ns)
	}
}

// A write storm on the API server while the snapshot is taken: no write
// fails, the copy is consistent (every object in it decodes), and
// restored, the API serves exactly the storm's objects the copy holds.
func TestSQLiteSnapshotUnderWriteStorm(t *testing.T) {
	ns := "sq-storm"
	kubectl(t, "create", "namespace", ns)
	cfg, err := clientcmd.BuildConfigFromFlags("", server.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Some bulk first, so that the copy takes a while: 40 objects of
	// 900 KiB.
	bulk := strings.Repeat("b", 900<<10)
	for i := range 40 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bulk-%d", i)}, Data: map[string]string{"v": bulk}}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes, failures atomic.Int64
	var firstErr atomic.Value
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("w%d-%d", w, i)}, Data: map[string]string{"v": strings.Repeat("x", 2048)}}
				_, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{})
				if err != nil && ctx.Err() == nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				writes.Add(1)
			}
		}()
	}
	// The storm is under way before the snapshot starts.
	for writes.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	before := writes.Load()
	snap := saveSnapshot(t, "storm")
	during := writes.Load() - before
	stop()
	wg.Wait()
	t.Logf("%d writes, %d of them while the snapshot was taken, %d failed", writes.Load(), during, failures.Load())
	if during == 0 {
		t.Errorf("no write went through while the snapshot was taken: the storm did not overlap it")
	}
	if failures.Load() > 0 {
		t.Errorf("%d writes failed during the snapshot, first: %v", failures.Load(), firstErr.Load())
	}

	inCopy := 0
	decoded := 0
	for key, value := range kineRows(t, snap.LocalPath) {
		if !strings.HasPrefix(key, "/registry/") || strings.HasPrefix(key, "/registry/health") {
			continue
		}
		if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(value, nil, nil); err != nil {
			// Objects of types this client does not know still carry
			// the k8s protobuf envelope or JSON.
			if !strings.HasPrefix(string(value), "k8s\x00") && !json.Valid(value) {
				t.Errorf("key %s in the copy does not decode: %v", key, err)
			}
		}
		decoded++
		if strings.HasPrefix(key, "/registry/configmaps/"+ns+"/") {
			inCopy++
		}
	}
	if inCopy == 0 || decoded == 0 {
		t.Fatalf("the copy holds %d keys, %d configmaps of %s", decoded, inCopy, ns)
	}

	r := kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	if r.Code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	list, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != inCopy {
		t.Errorf("after the restore the API serves %d configmaps in %s, the copy holds %d", len(list.Items), ns, inCopy)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kineRows reads the newest value of every live name in a kine database
// file, with SQLite itself rather than the agent's reader.
func kineRows(t *testing.T, path string) map[string][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name, value FROM kine WHERE id IN (SELECT MAX(id) FROM kine GROUP BY name) AND deleted = 0`)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var name string
		var value []byte
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		out[name] = value
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// namespacesIn names the namespaces a kine database file holds.
func namespacesIn(t *testing.T, path string) []string {
	var out []string
	for key := range kineRows(t, path) {
		if name, ok := strings.CutPrefix(key, "/registry/namespaces/"); ok {
			out = append(out, name)
		}
	}
	return out
}

// kubectl dr objects reads a SQLite restore point as it reads etcd's:
// ls lists what the snapshot holds, get prints it, and restore puts a
// deleted object back through the kine-backed API server without
// restoring the datastore.
func TestObjectsFromASQLiteSnapshot(t *testing.T) {
	kubectl(t, "create", "namespace", "sq-objects")
	kubectl(t, "-n", "sq-objects", "create", "configmap", "settings", "--from-literal=colour=teal")
	kubectl(t, "-n", "sq-objects", "create", "configmap", "other", "--from-literal=v=1")
	snap := saveSnapshot(t, "objects-source")
	kubectl(t, "-n", "sq-objects", "delete", "configmap", "settings")

	r := kubectlDR(t, "objects", "ls", snap.Name, "-n", "sq-objects", "--kind", "configmaps")
	if r.Code != 0 || !regexp.MustCompile(`(?m)^sq-objects\s+\S+\s+settings\b`).MatchString(r.Stdout) || !strings.Contains(r.Stdout, "other") {
		t.Fatalf("objects ls of the SQLite snapshot: exit %d, want rows for settings and other:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = kubectlDR(t, "objects", "get", snap.Name, "configmap/settings", "-n", "sq-objects", "-o", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"colour": "teal"`) {
		t.Fatalf("objects get: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = kubectlDR(t, "objects", "restore", snap.Name, "-n", "sq-objects", "--kind", "configmaps", "--name", "settings", "--yes")
	if r.Code != 0 {
		t.Fatalf("objects restore: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if out := kubectl(t, "-n", "sq-objects", "get", "configmap", "settings", "-o", "jsonpath={.data.colour}"); out != "teal" {
		t.Errorf("configmap sq-objects/settings after objects restore: colour %q, want teal", out)
	}
}
