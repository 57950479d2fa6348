package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

const objectsManifest = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.example.com
spec:
  group: e2e.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
---
apiVersion: v1
kind: Namespace
metadata: {name: objects-e2e, labels: {team: a}}
`

const objectsNamespaced = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: objects-e2e}
data: {color: blue, size: "3"}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: objects-e2e}
stringData: {password: hunter2}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: objects-e2e}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: objects-e2e}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: objects-e2e}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: app, namespace: objects-e2e}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: objects-e2e}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: objects-e2e}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: objects-e2e, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: app
      containers:
      - name: web
        image: registry.invalid/web:1.0
        env: [{name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
---
apiVersion: e2e.example.com/v1
kind: Widget
metadata: {name: w1, namespace: objects-e2e}
spec: {size: 3, color: green}
`

// liveObject is one object as kubectl gets it.
func liveObject(t *testing.T, ns, kind, name string) map[string]any {
	t.Helper()
	var obj map[string]any
	out := runKubectl(t, "-n", ns, "get", kind, name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("kubectl get %s %s: %v", kind, name, err)
	}
	return obj
}

// essence is what a user compares after a restore: spec, data, rules,
// bindings and labels; what the cluster assigns (the Service's cluster IP
// and node port) left out.
func essence(obj map[string]any) map[string]any {
	out := map[string]any{}
	for _, f := range []string{"spec", "data", "rules", "roleRef", "subjects", "type"} {
		if v, ok := obj[f]; ok {
			out[f] = v
		}
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		out["labels"] = md["labels"]
	}
	if spec, ok := out["spec"].(map[string]any); ok && obj["kind"] == "Service" {
		spec = copyMap(spec)
		for _, f := range []string{"clusterIP", "clusterIPs"} {
			delete(spec, f)
		}
		var ports []any
		for _, p := range spec["ports"].([]any) {
			p := copyMap(p.(map[string]any))
			delete(p, "nodePort")
			ports = append(ports, p)
		}
		spec["ports"] = ports
		out["spec"] = spec
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

var restoredKinds = [][2]string{
	{"configmap", "settings"}, {"secret", "db"}, {"serviceaccount", "app"}, {"role", "reader"},
	{"rolebinding", "reader"}, {"persistentvolumeclaim", "data"}, {"service", "web"},
	{"deployment", "web"}, {"widget", "w1"},
}

func objectsRestore(t *testing.T, r result) *printers.ObjectRestore {
	t.Helper()
	var out printers.ObjectRestore
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("restore JSON: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return &out
}

func restoreItem(res *printers.ObjectRestore, kind, ns, name string) (printers.ObjectRestoreItem, bool) {
	for _, it := range res.Items {
		if it.Kind == kind && it.Namespace == ns && it.Name == name {
			return it, true
		}
	}
	return printers.ObjectRestoreItem{}, false
}

// The proof: a namespace with a workload, its config, a secret
// (encrypted at rest by the API server), a claim, a custom resource and
// RBAC; snapshot; namespace and CRD deleted; `objects restore -n` brings
// every object back equal in spec and data, the CRD first.
func TestObjectsRestoreNamespaceFromSnapshot(t *testing.T) {
	const ns = "objects-e2e"
	applyManifest(t, objectsManifest)
	t.Cleanup(func() {
		runBin(t, theLab.Bin.Kubectl, nil, "delete", "namespace", ns, ns+"-copy", "--ignore-not-found", "--wait=false")
		runBin(t, theLab.Bin.Kubectl, nil, "delete", "crd", "widgets.e2e.example.com", "--ignore-not-found", "--wait=false")
	})
	runKubectl(t, "wait", "--for=condition=Established", "crd/widgets.e2e.example.com", "--timeout=60s")
	applyManifest(t, objectsNamespaced)

	// The Secret is encrypted at rest, as with k3s --secrets-encryption.
	resp, err := etcdClient(t, "server-1").Get(context.Background(), "/registry/secrets/"+ns+"/db")
	if err != nil || len(resp.Kvs) != 1 || !strings.HasPrefix(string(resp.Kvs[0].Value), "k8s:enc:aescbc:v1:") {
		t.Fatalf("secret in etcd: %v %v; want it encrypted with aescbc", err, resp)
	}
	before := map[[2]string]map[string]any{}
	for _, kn := range restoredKinds {
		before[kn] = essence(liveObject(t, ns, kn[0], kn[1]))
	}

	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "objects", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r).Name

	// Browsing: the table lists the namespace's objects, get decrypts.
	r = kubectlDR(t, nil, "objects", "ls", snap, "-n", ns)
	if r.code != 0 {
		t.Fatalf("objects ls: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"Deployment web", "ConfigMap settings", "Secret db", "Widget w1", "RoleBinding reader", "PersistentVolumeClaim data"} {
		found := false
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			found = found || (len(f) >= 3 && f[0] == ns && f[1]+" "+f[2] == want)
		}
		if !found {
			t.Errorf("objects ls has no row %s %s:\n%s", ns, want, r.stdout)
		}
	}
	r = kubectlDR(t, nil, "objects", "get", snap, "secret/db", "-n", ns, "-o", "json")
	if r.code != 0 {
		t.Fatalf("objects get: exit %d\n%s", r.code, r.stderr)
	}
	var secret struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &secret); err != nil || secret.Data["password"] != base64.StdEncoding.EncodeToString([]byte("hunter2")) {
		t.Errorf("objects get secret/db: %v %v", err, secret.Data)
	}

	// Bad input: a namespace the snapshot does not hold, listed.
	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", "no-such-ns", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, `holds no namespace "no-such-ns"`) || !strings.Contains(r.stderr, ns) {
		t.Errorf("unknown namespace: exit %d, %s; want 1 and the namespaces the snapshot holds", r.code, r.stderr)
	}

	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--kind", "gizmo", "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, "holds no gizmo in namespace "+ns+"; kinds there: ") || !strings.Contains(r.stderr, "Widget") {
		t.Errorf("unknown kind: exit %d, %s; want 1 and the kinds the namespace holds", r.code, r.stderr)
	}

	runKubectl(t, "delete", "namespace", ns, "--wait=true", "--timeout=120s")
	runKubectl(t, "delete", "crd", "widgets.e2e.example.com", "--wait=true", "--timeout=60s")

	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--yes", "-o", "json")
	if r.code != 0 {
		t.Fatalf("objects restore: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	res := objectsRestore(t, r)
	if it, ok := restoreItem(res, "CustomResourceDefinition", "", "widgets.e2e.example.com"); !ok || it.Action != printers.ActionCreate || !it.Done {
		t.Errorf("CRD in the restore: %+v, %v; want created", it, ok)
	}
	for _, it := range res.Items {
		if it.Kind == "ReplicaSet" || it.Kind == "Pod" {
			if it.Action != printers.ActionSkip || !strings.Contains(it.Reason, "left to its controller") {
				t.Errorf("%s %s: %s (%s); want skipped, left to its controller", it.Kind, it.Name, it.Action, it.Reason)
			}
		}
		if it.Action == printers.ActionFail {
			t.Errorf("%s %s failed: %s", it.Kind, it.Name, it.Reason)
		}
	}
	for _, kn := range restoredKinds {
		if diff := cmp.Diff(before[kn], essence(liveObject(t, ns, kn[0], kn[1]))); diff != "" {
			t.Errorf("%s/%s after restore (-before +after):\n%s", kn[0], kn[1], diff)
		}
	}
	if got := liveObject(t, "", "namespace", ns)["metadata"].(map[string]any)["labels"].(map[string]any)["team"]; got != "a" {
		t.Errorf("namespace label team=%v, want a", got)
	}

	// A copy beside the original.
	const copyNS = ns + "-copy"
	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--namespace-mapping", ns+":"+copyNS, "--yes", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore --namespace-mapping: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, kn := range restoredKinds {
		want := before[kn]
		if kn[0] == "rolebinding" {
			want = essence(liveObject(t, ns, kn[0], kn[1]))
			want["subjects"].([]any)[0].(map[string]any)["namespace"] = copyNS
		}
		if diff := cmp.Diff(want, essence(liveObject(t, copyNS, kn[0], kn[1]))); diff != "" {
			t.Errorf("%s/%s in %s (-want +got):\n%s", kn[0], kn[1], copyNS, diff)
		}
	}

	// --existing skip (the default) leaves a changed object alone and says so.
	runKubectl(t, "-n", ns, "patch", "configmap", "settings", "-p", `{"data":{"color":"red"}}`)
	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--kind", "configmap", "--yes")
	if r.code != 0 {
		t.Fatalf("restore over existing: exit %d\n%s", r.code, r.stderr)
	}
	found := false
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "skipped" && f[1] == "ConfigMap" && f[2] == ns && f[3] == "settings" && f[4] == "exists" {
			found = true
		}
	}
	if !found {
		t.Errorf("no row 'skipped ConfigMap %s settings exists' in:\n%s", ns, r.stdout)
	}
	if !strings.Contains(r.stderr, "0 created, 0 updated") {
		t.Errorf("summary: %s", r.stderr)
	}
	if got := liveObject(t, ns, "configmap", "settings")["data"].(map[string]any)["color"]; got != "red" {
		t.Errorf("color %v after --existing skip, want red (left alone)", got)
	}
	r = kubectlDR(t, nil, "objects", "restore", snap, "-n", ns, "--kind", "configmap", "--name", "settings", "--existing", "update", "--yes")
	if r.code != 0 {
		t.Fatalf("restore --existing update: exit %d\n%s", r.code, r.stderr)
	}
	if got := liveObject(t, ns, "configmap", "settings")["data"].(map[string]any)["color"]; got != "blue" {
		t.Errorf("color %v after --existing update, want blue", got)
	}
}
