package registry

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Prefix is where kube-apiserver keeps its objects.
const Prefix = "/registry/"

// Ref names one object by its key.
type Ref struct {
	Group, Resource string
	// Namespace is empty for cluster-scoped objects.
	Namespace, Name string
}

// GroupResource is the object's resource in its group.
func (r Ref) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// builtin maps the first path element of a built-in type's key to its
// group and resource where the key does not say them: kube-apiserver
// keys built-in types by resource alone (and a few by older names).
var builtin = map[string]schema.GroupResource{
	"minions":     {Resource: "nodes"},
	"controllers": {Resource: "replicationcontrollers"},
	"ingress":     {Group: "networking.k8s.io", Resource: "ingresses"},

	"deployments": {Group: "apps", Resource: "deployments"}, "replicasets": {Group: "apps", Resource: "replicasets"},
	"daemonsets": {Group: "apps", Resource: "daemonsets"}, "statefulsets": {Group: "apps", Resource: "statefulsets"},
	"controllerrevisions": {Group: "apps", Resource: "controllerrevisions"},

	"jobs": {Group: "batch", Resource: "jobs"}, "cronjobs": {Group: "batch", Resource: "cronjobs"},
	"horizontalpodautoscalers": {Group: "autoscaling", Resource: "horizontalpodautoscalers"},
	"poddisruptionbudgets":     {Group: "policy", Resource: "poddisruptionbudgets"},

	"ingressclasses": {Group: "networking.k8s.io", Resource: "ingressclasses"}, "networkpolicies": {Group: "networking.k8s.io", Resource: "networkpolicies"},
	"ipaddresses": {Group: "networking.k8s.io", Resource: "ipaddresses"}, "servicecidrs": {Group: "networking.k8s.io", Resource: "servicecidrs"},
	"endpointslices": {Group: "discovery.k8s.io", Resource: "endpointslices"},

	"roles": {Group: "rbac.authorization.k8s.io", Resource: "roles"}, "rolebindings": {Group: "rbac.authorization.k8s.io", Resource: "rolebindings"},
	"clusterroles": {Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, "clusterrolebindings": {Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},

	"storageclasses": {Group: "storage.k8s.io", Resource: "storageclasses"}, "volumeattachments": {Group: "storage.k8s.io", Resource: "volumeattachments"},
	"csinodes": {Group: "storage.k8s.io", Resource: "csinodes"}, "csidrivers": {Group: "storage.k8s.io", Resource: "csidrivers"},
	"csistoragecapacities": {Group: "storage.k8s.io", Resource: "csistoragecapacities"}, "volumeattributesclasses": {Group: "storage.k8s.io", Resource: "volumeattributesclasses"},

	"leases":                     {Group: "coordination.k8s.io", Resource: "leases"},
	"priorityclasses":            {Group: "scheduling.k8s.io", Resource: "priorityclasses"},
	"certificatesigningrequests": {Group: "certificates.k8s.io", Resource: "certificatesigningrequests"},
	"runtimeclasses":             {Group: "node.k8s.io", Resource: "runtimeclasses"},

	"flowschemas": {Group: "flowcontrol.apiserver.k8s.io", Resource: "flowschemas"}, "prioritylevelconfigurations": {Group: "flowcontrol.apiserver.k8s.io", Resource: "prioritylevelconfigurations"},

	"validatingwebhookconfigurations":   {Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
	"mutatingwebhookconfigurations":     {Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
	"validatingadmissionpolicies":       {Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies"},
	"validatingadmissionpolicybindings": {Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"},
	"mutatingadmissionpolicies":         {Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicies"},
	"mutatingadmissionpolicybindings":   {Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicybindings"},

	"resourceclaims": {Group: "resource.k8s.io", Resource: "resourceclaims"}, "resourceclaimtemplates": {Group: "resource.k8s.io", Resource: "resourceclaimtemplates"},
	"deviceclasses": {Group: "resource.k8s.io", Resource: "deviceclasses"}, "resourceslices": {Group: "resource.k8s.io", Resource: "resourceslices"},
}

// internalKeys are kept under /registry/ but are no API objects:
// allocator bitmaps and the API servers' own leases.
var internalKeys = map[string]bool{"ranges": true, "masterleases": true, "apiserverleases": true}

// ParseKey names the object a key holds: /registry/<resource>/[<ns>/]<name>
// for built-in types (group from the table above; services under
// services/specs, their endpoints under services/endpoints),
// /registry/<group>/<resource>/[<ns>/]<name> for groups with a dot (CRDs
// under apiextensions.k8s.io/customresourcedefinitions, custom resources,
// aggregated APIs). ok is false for keys that name no API object.
func ParseKey(key string) (ref Ref, ok bool) {
	rest, found := strings.CutPrefix(key, Prefix)
	if !found {
		return Ref{}, false
	}
	parts := strings.Split(rest, "/")
	first := parts[0]
	parts = parts[1:]
	switch {
	case first == "" || internalKeys[first]:
		return Ref{}, false
	case strings.Contains(first, "."):
		if len(parts) < 2 || parts[0] == "" {
			return Ref{}, false
		}
		ref.Group, ref.Resource = first, parts[0]
		parts = parts[1:]
	case first == "services":
		if len(parts) < 2 {
			return Ref{}, false
		}
		switch parts[0] {
		case "specs":
			ref.Resource = "services"
		case "endpoints":
			ref.Resource = "endpoints"
		default:
			return Ref{}, false
		}
		parts = parts[1:]
	default:
		if gr, known := builtin[first]; known {
			ref.Group, ref.Resource = gr.Group, gr.Resource
		} else {
			ref.Resource = first
		}
	}
	switch len(parts) {
	case 1:
		ref.Name = parts[0]
	case 2:
		ref.Namespace, ref.Name = parts[0], parts[1]
	default:
		return Ref{}, false
	}
	if ref.Name == "" || (len(parts) == 2 && ref.Namespace == "") {
		return Ref{}, false
	}
	return ref, true
}
