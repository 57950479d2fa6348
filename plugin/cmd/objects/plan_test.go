package objects

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestStripRemovesWhatTheClusterAssigns(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"service", `apiVersion: v1
kind: Service
metadata: {name: web, namespace: a, uid: u1, resourceVersion: "7", creationTimestamp: "2026-01-01T00:00:00Z", managedFields: [{manager: kubectl}]}
spec: {type: NodePort, clusterIP: 10.43.0.9, clusterIPs: [10.43.0.9], ports: [{port: 80, nodePort: 30080}]}
status: {loadBalancer: {}}`, `apiVersion: v1
kind: Service
metadata: {name: web, namespace: b}
spec: {type: NodePort, ports: [{port: 80}]}`},
		{"headless service keeps None", `apiVersion: v1
kind: Service
metadata: {name: db, namespace: a}
spec: {clusterIP: None, clusterIPs: [None]}`, `apiVersion: v1
kind: Service
metadata: {name: db, namespace: b}
spec: {clusterIP: None, clusterIPs: [None]}`},
		{"claim binding", `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: a, annotations: {pv.kubernetes.io/bind-completed: "yes", keep: me}, finalizers: [kubernetes.io/pvc-protection]}
spec: {volumeName: pvc-123, resources: {requests: {storage: 1Gi}}}
status: {phase: Bound}`, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: b, annotations: {keep: me}}
spec: {resources: {requests: {storage: 1Gi}}}`},
		{"role binding subjects follow the mapping", `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: a}
subjects: [{kind: ServiceAccount, name: app, namespace: a}, {kind: ServiceAccount, name: x, namespace: other}]`, `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: b}
subjects: [{kind: ServiceAccount, name: app, namespace: b}, {kind: ServiceAccount, name: x, namespace: other}]`},
		{"custom resources keep status", `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: a, generation: 4}
status: {ready: true}`, `apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: b}
status: {ready: true}`},
		{"namespace renamed", `apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {kubernetes.io/metadata.name: a, team: x}}
spec: {finalizers: [kubernetes]}
status: {phase: Active}`, `apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {kubernetes.io/metadata.name: b, team: x}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := strip(obj(t, c.in), map[string]string{"a": "b"})
			if diff := cmp.Diff(obj(t, c.want).Object, got.Object); diff != "" {
				t.Errorf("strip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSkipReason(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{apiVersion: apps/v1, kind: ReplicaSet, metadata: {name: web-1, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u, controller: true}]}}`, "owned by Deployment web: left to its controller"},
		{`{apiVersion: v1, kind: Pod, metadata: {name: p, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-1, uid: u, controller: true}]}}`, "owned by ReplicaSet web-1: left to its controller"},
		{`{apiVersion: v1, kind: Pod, metadata: {name: standalone}}`, ""},
		{`{apiVersion: v1, kind: ConfigMap, metadata: {name: owned, ownerReferences: [{apiVersion: example.com/v1, kind: Widget, name: w, uid: u, controller: true}]}}`, ""},
		{`{apiVersion: v1, kind: Secret, metadata: {name: t}, type: kubernetes.io/service-account-token}`, "service account token: the control plane issues a new one"},
		{`{apiVersion: v1, kind: ConfigMap, metadata: {name: kube-root-ca.crt}}`, "published by the control plane in every namespace"},
	} {
		if got := skipReason(obj(t, c.in)); got != c.want {
			t.Errorf("skipReason(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRanksFollowTheDependencyOrder(t *testing.T) {
	chain := []schema.GroupKind{
		{Kind: "Namespace"}, {Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
		{Group: "rbac.authorization.k8s.io", Kind: "Role"}, {Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"},
		{Kind: "ServiceAccount"}, {Kind: "Secret"}, {Kind: "PersistentVolumeClaim"}, {Kind: "Service"},
		{Group: "apps", Kind: "Deployment"}, {Group: "example.com", Kind: "Widget"},
	}
	for i := 1; i < len(chain); i++ {
		if rankOf(chain[i-1]) >= rankOf(chain[i]) {
			t.Errorf("%s (rank %d) does not come before %s (rank %d)", chain[i-1], rankOf(chain[i-1]), chain[i], rankOf(chain[i]))
		}
	}
}
