package oneserver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/etcdmember"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab/labtest"
)

// One kubeadm-style member under the lab's kube-apiserver: the dry run
// lists exactly what changed since the snapshot, the restore brings the API
// back with the snapshot's objects; a node that runs no member is refused.
func TestEtcdFlavourOneServer(t *testing.T) {
	ns := "one-server"
	kubectl(t, "create", "namespace", ns)
	for _, cm := range []string{"cm-a", "cm-b", "cm-c"} {
		kubectl(t, "-n", ns, "create", "configmap", cm, "--from-literal=v=1")
	}
	snap := labtest.SaveSnapshot(t, theLab, "one-server")
	kubectl(t, "-n", ns, "delete", "configmap", "cm-a")
	kubectl(t, "-n", ns, "patch", "configmap", "cm-b", "-p", `{"data":{"v":"2"}}`)
	kubectl(t, "-n", ns, "create", "configmap", "cm-d", "--from-literal=v=1")
	kubectl(t, "create", "namespace", "one-server-later")

	worker := theLab.State.Nodes[1]
	r := kubectlDR(t, "etcd", "restore", "--latest", "--node", worker, "--dry-run")
	if r.Code == 0 || !strings.Contains(r.Stderr, worker) || !strings.Contains(r.Stderr, "etcd member") {
		t.Errorf("restore on %s (no etcd member): exit %d\n%s\nwant a refusal naming the node", worker, r.Code, r.Stderr)
	}

	r = kubectlDR(t, "etcd", "restore", snap.Name, "--dry-run", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("restore --dry-run: exit %d\n%s", r.Code, r.Stderr)
	}
	var view printers.EtcdRestorePreview
	if err := json.Unmarshal([]byte(r.Stdout), &view); err != nil {
		t.Fatalf("preview JSON: %v\n%s", err, r.Stdout)
	}
	diff := map[string][3][]string{}
	for _, it := range view.Items {
		if it.Disappear+it.Reappear+it.Change > 0 && (it.GroupResource == "configmaps" || it.GroupResource == "namespaces") {
			diff[it.GroupResource+"/"+it.Namespace] = [3][]string{it.DisappearNames, it.ReappearNames, it.ChangeNames}
		}
	}
	want := map[string][3][]string{
		"configmaps/" + ns: {{"cm-d"}, {"cm-a"}, {"cm-b"}},
		"namespaces/":      {{"one-server-later"}, nil, nil},
	}
	if !reflect.DeepEqual(diff, want) {
		t.Errorf("preview (disappear, reappear, change):\n%v\nwant\n%v", diff, want)
	}

	r = kubectlDR(t, "etcd", "restore", snap.Name, "--yes")
	t.Logf("restore --yes:\n%s\n%s", r.Stderr, r.Stdout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "RTO") {
		t.Fatalf("restore: exit %d, want 0 and the RTO", r.Code)
	}
	labtest.WaitConfigMaps(t, theLab, ns, "cm-a", "cm-b", "cm-c")
	if v := kubectl(t, "-n", ns, "get", "configmap", "cm-b", "-o", "jsonpath={.data.v}"); v != "1" {
		t.Errorf("cm-b after the restore: v=%q, want the snapshot's 1", v)
	}
	if r := runBin(t, theLab.Bin.Kubectl, nil, "get", "namespace", "one-server-later"); r.Code == 0 {
		t.Errorf("namespace one-server-later, created after the snapshot, is still there")
	}
}

// With every process on the node stopped (API server, agents, etcd), the
// agent binary alone restores the server from the store with the k3s
// steps (the k3s stand-in runs the reset); then onto a "new host" whose
// server token and etcd data are gone, --new-host puts the token kept
// with the snapshot back.
func TestNodeLevelRestoreWithK3sStandin(t *testing.T) {
	labtest.UseRestoreFlavor(t, theLab, "k3s")
	ns := "node-level"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "from-the-snapshot", "--from-literal=v=1")
	snap := labtest.SaveSnapshot(t, theLab, "node-level")
	kubectl(t, "-n", ns, "delete", "configmap", "from-the-snapshot")
	kubectl(t, "-n", ns, "create", "configmap", "after-the-snapshot", "--from-literal=v=1")

	node := theLab.EtcdNodes()[0]
	dataDir := theLab.DataDir(node)
	stopAll := func() {
		t.Helper()
		for _, p := range []string{"kube-apiserver", "agent-" + theLab.State.Nodes[0], "agent-" + theLab.State.Nodes[1], "etcd-" + node} {
			if err := theLab.StopProcess(p); err != nil {
				t.Fatalf("stop %s: %v", p, err)
			}
		}
	}
	env := []string{"K3S_CONFIG_FILE=" + theLab.K3sConfigPath(node)}
	restore := func(args ...string) labtest.Result {
		t.Helper()
		args = append([]string{"etcd", "restore", "--config", theLab.AgentConfigPath(node)}, args...)
		r := runBin(t, theLab.Bin.DRAgent, env, args...)
		t.Logf("dr-agent %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		return r
	}
	stopAll()

	r := restore("--latest")
	if r.Code != 0 || !strings.Contains(r.Stdout, snap.Name) || !strings.Contains(r.Stdout, "Nothing was changed") {
		t.Errorf("without --yes: exit %d, want 0, the snapshot named and nothing changed", r.Code)
	}
	if st := etcdmember.Status(t.Context(), theLab.EtcdClient(node)); st.Err == nil {
		t.Fatalf("etcd answers after a run without --yes")
	}
	r = restore("--latest", "--yes")
	if r.Code != 0 {
		t.Fatalf("node-level restore: exit %d", r.Code)
	}
	for _, want := range []string{"cluster-reset done", "wait-healthy done", "is healthy"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if old, _ := filepath.Glob(filepath.Join(dataDir, "server", "db", "etcd-old-*")); len(old) != 1 {
		t.Errorf("k3s's etcd-old dirs %v, want the previous data dir kept once", old)
	}
	if err := theLab.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	labtest.WaitConfigMaps(t, theLab, ns, "from-the-snapshot")

	t.Run("new host", func(t *testing.T) {
		token := filepath.Join(dataDir, "server", "token")
		want, err := os.ReadFile(token)
		if err != nil {
			t.Fatal(err)
		}
		stopAll()
		// A new host: no server token, no etcd data (its etcd
		// certificates stay: k3s would make them from the bootstrap
		// data, which the stand-in cannot).
		if err := os.Remove(token); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dataDir, "server", "db", "etcd"), filepath.Join(t.TempDir(), "etcd")); err != nil {
			t.Fatal(err)
		}
		// The preflight refuses before anything stops: the token is
		// missing, and --skip-preflight names the checks it takes.
		r := restore("--latest", "--yes")
		if r.Code != 1 {
			t.Errorf("restore onto a host without the token: exit %d, want 1", r.Code)
		}
		for _, want := range []string{"preflight failed, nothing was stopped", "token: no server token at " + token, "fix: a new host: restore it with kubectl dr recover (or dr-agent etcd restore --new-host)", "--skip-preflight CHECK"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if !hasRow(r.Stdout, "token", "failed") || !hasRow(r.Stdout, "k3s-version") || !hasRow(r.Stdout, "disk", "ok") {
			t.Errorf("no preflight rows token failed, k3s-version, disk ok")
		}
		if strings.Contains(r.Stdout, "stop running") {
			t.Errorf("a step ran after the failed preflight")
		}
		if r := restore("--latest", "--yes", "--skip-preflight", "tokens"); r.Code == 0 || !strings.Contains(r.Stderr, `--skip-preflight "tokens": want one of token, k3s-version, encryption-config, disk`) {
			t.Errorf("--skip-preflight tokens: exit %d, want the checks named", r.Code)
		}
		r = restore("--latest", "--new-host", "--yes")
		if r.Code != 0 || !strings.Contains(r.Stdout, "put-bootstrap-files done") {
			t.Fatalf("restore --new-host: exit %d", r.Code)
		}
		if !hasRow(r.Stdout, "token", "ok") {
			t.Errorf("restore --new-host: no preflight row token ok")
		}
		got, err := os.ReadFile(token)
		if err != nil || string(got) != string(want) {
			t.Errorf("server/token after --new-host: %q, %v; want the snapshot's token back", got, err)
		}
		if err := theLab.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		labtest.WaitConfigMaps(t, theLab, ns, "from-the-snapshot")
	})
}

// hasRow reports whether a line of out has the fields in order at its
// start.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), strings.Join(fields, " ")) {
			return true
		}
	}
	return false
}
