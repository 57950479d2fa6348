package install

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func render(t *testing.T, mutate func(map[string]any)) []*unstructured.Unstructured {
	t.Helper()
	tree, err := EmbeddedConfig()
	if err != nil {
		t.Fatal(err)
	}
	tree["clusterID"] = "uid-1"
	if mutate != nil {
		mutate(tree)
	}
	objs, err := Render(Settings{
		Namespace: "backup", Image: "registry.example/dr-agent:v1", DataDir: "/data/k3s", StateDir: "/data/dr-agent", Port: 7000,
		Config:  tree,
		Secrets: []*unstructured.Unstructured{secret("dr-store", map[string][]byte{"url": []byte("s3://b/p")})},
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			var v T
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &v); err != nil {
				t.Fatal(err)
			}
			return &v
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// The security-relevant fields of the DaemonSet: privileged only in the
// agent's container, no port of the host declared for gRPC, Secrets as
// read-only files, the RBAC read-only but for events.
func TestRenderedDaemonSetSecurity(t *testing.T) {
	objs := render(t, nil)
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "dr-agent")
	spec := ds.Spec.Template.Spec
	if ds.Namespace != "backup" {
		t.Errorf("namespace = %q, want backup", ds.Namespace)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("containers = %d, init containers = %d; want one privileged container and nothing else", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("agent container not privileged: host actions (stopping k3s for a restore) need it")
	}
	if len(c.Ports) != 0 {
		t.Errorf("container declares ports %v: with hostNetwork each is a host port; gRPC must stay on loopback", c.Ports)
	}
	if c.Image != "registry.example/dr-agent:v1" {
		t.Errorf("image = %q", c.Image)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Host != "127.0.0.1" || p.HTTPGet.Port.IntValue() != 7001 {
			t.Errorf("probe %+v: want httpGet on 127.0.0.1:7001 (the health endpoint on the node's loopback)", p)
		}
	}
	if got := ds.Spec.Template.Annotations["dr.kubectl.io/grpc-port"]; got != "7000" {
		t.Errorf("grpc-port annotation = %q, want 7000", got)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("no memory limit")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	for _, v := range spec.Volumes {
		m, ok := mounts[v.Name]
		if !ok {
			t.Errorf("volume %s is not mounted", v.Name)
			continue
		}
		switch {
		case v.Secret != nil:
			if !m.ReadOnly || m.SubPath != "" {
				t.Errorf("Secret %s mounted read-write or by subPath (no updates): %+v", v.Secret.SecretName, m)
			}
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
				t.Errorf("Secret %s files not 0400", v.Secret.SecretName)
			}
		case v.ConfigMap != nil:
			if !m.ReadOnly || m.SubPath != "" {
				t.Errorf("ConfigMap mounted read-write or by subPath (the agent would miss updates): %+v", m)
			}
		case v.HostPath != nil:
			if v.HostPath.Path != m.MountPath {
				t.Errorf("hostPath %s mounted at %s: the config's paths must mean the same in the pod", v.HostPath.Path, m.MountPath)
			}
		}
	}
	for _, env := range c.Env {
		if env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil {
			t.Errorf("Secret in environment variable %s: secrets are files", env.Name)
		}
	}
	var hostPaths []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.HostPath.Path)
		}
	}
	if !slices.Equal(hostPaths, []string{"/data/k3s", "/data/dr-agent"}) {
		t.Errorf("hostPaths = %v, want the data dir and the state dir only", hostPaths)
	}

	cr := find[rbacv1.ClusterRole](t, objs, "ClusterRole", "dr-agent")
	for _, r := range cr.Rules {
		for _, v := range r.Verbs {
			if v == "*" || (!slices.Contains(r.Resources, "events") && v != "get" && v != "list") {
				t.Errorf("ClusterRole grants %s on %v: the agent only reads, and writes events", v, r.Resources)
			}
		}
	}
	crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "dr-agent")
	if crb.Subjects[0].Namespace != "backup" {
		t.Errorf("ClusterRoleBinding subject in %q, want backup", crb.Subjects[0].Namespace)
	}
	for _, o := range objs {
		if o.GetLabels()[PartOfLabel] != PartOfValue {
			t.Errorf("%s/%s lacks the %s label uninstall needs", o.GetKind(), o.GetName(), PartOfLabel)
		}
	}
	// Secrets come before the DaemonSet that mounts them.
	var order []string
	for _, o := range objs {
		order = append(order, o.GetKind())
	}
	if slices.Index(order, "Secret") > slices.Index(order, "DaemonSet") {
		t.Errorf("order %v: Secrets must be applied before the DaemonSet", order)
	}
}

func TestRenderMountsConfiguredPaths(t *testing.T) {
	objs := render(t, func(tree map[string]any) {
		restic := tree["restic"].(map[string]any)
		restic["paths"] = []any{"/data/k3s/storage", "/srv/app/*/uploads", "/srv/app/static"}
		restic["nodes"] = map[string]any{"db-1": map[string]any{"paths": []any{"/mnt/db"}}}
		tree["wal"] = map[string]any{"sources": []any{map[string]any{"name": "pg", "spool": "/var/lib/dr-wal/pg", "pgdata": "/mnt/db/pgdata"}}}
	})
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "dr-agent")
	var got []string
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if strings.HasPrefix(v.Name, hostVolumePrefix) {
			got = append(got, v.HostPath.Path)
		}
	}
	// Under the data dir: already mounted; a glob: its directory; nested:
	// the parent only.
	want := []string{"/mnt/db", "/srv/app", "/var/lib/dr-wal/pg"}
	if !slices.Equal(got, want) {
		t.Errorf("extra hostPaths = %v, want %v", got, want)
	}
}

func TestRenderRefusesAConfigTheAgentWouldRefuse(t *testing.T) {
	tree, err := EmbeddedConfig()
	if err != nil {
		t.Fatal(err)
	}
	tree["etcd"] = map[string]any{"schedule": "every tuesday"}
	_, err = Render(Settings{Namespace: "dr-system", Image: "x", DataDir: "/d", StateDir: "/s", Port: 9650, Config: tree})
	if err == nil || !strings.Contains(err.Error(), "etcd.schedule") {
		t.Errorf("Render with a bad schedule: err = %v, want one naming etcd.schedule", err)
	}
	tree["etcd"] = map[string]any{"shedule": "0 * * * *"}
	_, err = Render(Settings{Namespace: "dr-system", Image: "x", DataDir: "/d", StateDir: "/s", Port: 9650, Config: tree})
	if err == nil || !strings.Contains(err.Error(), "shedule") {
		t.Errorf("Render with a misspelt key: err = %v, want one naming it", err)
	}
}
