package objects

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// step is one object of a restore plan.
type step struct {
	item printers.ObjectRestoreItem
	// obj is what is applied: stripped and mapped.
	obj    *unstructured.Unstructured
	gvk    schema.GroupVersionKind
	oldUID string
	rank   int
	// src is the object as the snapshot holds it.
	src *unstructured.Unstructured
	// owners are the old UIDs of the owners it keeps a reference to.
	owners map[string]bool
}

// ranks order a restore (the dependency order): what others
// refer to first, workloads after what they mount and run as, custom
// resources last.
var ranks = map[schema.GroupKind]int{
	{Kind: "Namespace"}: 0,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: 1,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:               2,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                   2,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:         3,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:                3,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:  4,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:         4,
	{Kind: "ServiceAccount"}:                                          5,
	{Kind: "ConfigMap"}:                                               6,
	{Kind: "Secret"}:                                                  6,
	{Kind: "LimitRange"}:                                              6,
	{Kind: "ResourceQuota"}:                                           6,
	{Kind: "PersistentVolume"}:                                        7,
	{Kind: "PersistentVolumeClaim"}:                                   8,
	{Kind: "Service"}:                                                 9,
	{Group: "apps", Kind: "Deployment"}:                               10,
	{Group: "apps", Kind: "StatefulSet"}:                              10,
	{Group: "apps", Kind: "DaemonSet"}:                                10,
	{Group: "apps", Kind: "ReplicaSet"}:                               10,
	{Kind: "ReplicationController"}:                                   10,
	{Group: "batch", Kind: "CronJob"}:                                 10,
	{Group: "batch", Kind: "Job"}:                                     10,
	{Kind: "Pod"}:                                                     10,
	{Group: "apps", Kind: "ControllerRevision"}:                       10,
}

func rankOf(gk schema.GroupKind) int {
	if r, ok := ranks[gk]; ok {
		return r
	}
	if builtinGroup(gk.Group) {
		return 11
	}
	return 12
}

// builtinGroup reports whether a group is Kubernetes' own (not a CRD's).
func builtinGroup(g string) bool {
	return g == "" || !strings.Contains(g, ".") || strings.HasSuffix(g, ".k8s.io")
}

// leftToControllers are kinds whose controller-owned objects the
// controller recreates: restoring them too would fight it.
var leftToControllers = map[schema.GroupKind]bool{
	{Kind: "Pod"}: true, {Group: "apps", Kind: "ReplicaSet"}: true,
	{Group: "apps", Kind: "ControllerRevision"}: true, {Group: "batch", Kind: "Job"}: true,
}

// skipReason says why an object is not restored, "" when it is.
func skipReason(u *unstructured.Unstructured) string {
	gk := u.GroupVersionKind().GroupKind()
	if c := metav1.GetControllerOfNoCopy(u); c != nil && leftToControllers[gk] {
		return fmt.Sprintf("owned by %s %s: left to its controller", c.Kind, c.Name)
	}
	switch {
	case gk == schema.GroupKind{Kind: "Event"} || gk == schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}:
		return "events are not restored"
	case gk == schema.GroupKind{Kind: "Endpoints"} || gk == schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}:
		return "endpoints follow their Service: the control plane recreates them"
	case gk == schema.GroupKind{Kind: "Secret"}:
		if t, _, _ := unstructured.NestedString(u.Object, "type"); t == "kubernetes.io/service-account-token" {
			return "service account token: the control plane issues a new one"
		}
	case gk == schema.GroupKind{Kind: "ConfigMap"} && u.GetName() == "kube-root-ca.crt":
		return "published by the control plane in every namespace"
	case gk == schema.GroupKind{Group: "coordination.k8s.io", Kind: "Lease"}:
		return "leases belong to the running components"
	}
	return ""
}

// bindingAnnotations record a PVC's or PV's binding; a restored claim
// binds anew.
var bindingAnnotations = []string{
	"pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
	"volume.beta.kubernetes.io/storage-provisioner", "volume.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/selected-node", "pv.kubernetes.io/provisioned-by",
}

// strip removes what must not be carried over into a cluster: identity and
// bookkeeping the API server assigns, status it ignores (built-in types
// take status only through their subresource), addresses it allocates,
// and volume bindings; ns maps the namespace (and a RoleBinding's service
// account subjects) when non-empty.
func strip(in *unstructured.Unstructured, mapping map[string]string) *unstructured.Unstructured {
	u := in.DeepCopy()
	md := u.Object["metadata"].(map[string]any)
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers"} {
		delete(md, f)
	}
	gk := u.GroupVersionKind().GroupKind()
	if gk.Kind == "Namespace" && gk.Group == "" {
		// The namespace controller's finalizer lives in spec.
		delete(u.Object, "spec")
	}
	if builtinGroup(gk.Group) {
		delete(u.Object, "status")
	}
	if ns := u.GetNamespace(); ns != "" {
		if to, ok := mapping[ns]; ok {
			u.SetNamespace(to)
		}
	}
	if gk.Kind == "Namespace" && gk.Group == "" {
		if to, ok := mapping[u.GetName()]; ok {
			u.SetName(to)
			labels := u.GetLabels()
			if labels["kubernetes.io/metadata.name"] != "" {
				labels["kubernetes.io/metadata.name"] = to
				u.SetLabels(labels)
			}
		}
	}
	annotations := u.GetAnnotations()
	switch gk {
	case schema.GroupKind{Kind: "Service"}:
		if ip, _, _ := unstructured.NestedString(u.Object, "spec", "clusterIP"); ip != "None" {
			unstructured.RemoveNestedField(u.Object, "spec", "clusterIP")
			unstructured.RemoveNestedField(u.Object, "spec", "clusterIPs")
		}
		unstructured.RemoveNestedField(u.Object, "spec", "healthCheckNodePort")
		if ports, ok, _ := unstructured.NestedSlice(u.Object, "spec", "ports"); ok {
			for _, p := range ports {
				if m, ok := p.(map[string]any); ok {
					delete(m, "nodePort")
				}
			}
			_ = unstructured.SetNestedSlice(u.Object, ports, "spec", "ports")
		}
	case schema.GroupKind{Kind: "PersistentVolumeClaim"}:
		unstructured.RemoveNestedField(u.Object, "spec", "volumeName")
		for _, a := range bindingAnnotations {
			delete(annotations, a)
		}
	case schema.GroupKind{Kind: "PersistentVolume"}:
		unstructured.RemoveNestedField(u.Object, "spec", "claimRef")
		for _, a := range bindingAnnotations {
			delete(annotations, a)
		}
	case schema.GroupKind{Kind: "Pod"}:
		unstructured.RemoveNestedField(u.Object, "spec", "nodeName")
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		// The selector and its labels were generated from the old uid.
		if manual, _, _ := unstructured.NestedBool(u.Object, "spec", "manualSelector"); !manual {
			unstructured.RemoveNestedField(u.Object, "spec", "selector")
			for _, l := range []string{"controller-uid", "batch.kubernetes.io/controller-uid"} {
				unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "labels", l)
				if labels := u.GetLabels(); labels != nil {
					delete(labels, l)
					u.SetLabels(labels)
				}
			}
		}
	case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
		if subjects, ok, _ := unstructured.NestedSlice(u.Object, "subjects"); ok {
			for _, s := range subjects {
				if m, ok := s.(map[string]any); ok && m["kind"] == "ServiceAccount" {
					if ns, _ := m["namespace"].(string); mapping[ns] != "" {
						m["namespace"] = mapping[ns]
					}
				}
			}
			_ = unstructured.SetNestedSlice(u.Object, subjects, "subjects")
		}
	}
	if annotations != nil {
		u.SetAnnotations(annotations)
	}
	return u
}

// order sorts a plan into dependency order; within a rank by namespace,
// kind and name, so that a plan reads the same every time.
func order(steps []*step) {
	sort.SliceStable(steps, func(i, j int) bool {
		a, b := steps[i], steps[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if a.item.Namespace != b.item.Namespace {
			return a.item.Namespace < b.item.Namespace
		}
		if a.item.Kind != b.item.Kind {
			return a.item.Kind < b.item.Kind
		}
		return a.item.Name < b.item.Name
	})
}
