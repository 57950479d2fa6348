package objects

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// Scope chooses objects of a restore point: namespaces, kinds, names and
// labels, each a flag (a front end fills them).
type Scope struct {
	Namespaces    []string
	AllNamespaces bool
	Kinds         []string
	Names         []string
	Selector      string

	selector labels.Selector
	// namespacedOnly leaves cluster-scoped objects out whatever the
	// namespaces (a restore brings only what lives in namespaces).
	namespacedOnly bool
	// lean keeps of each object only what a listing prints (thin), so
	// that memory does not grow with the size of the values.
	lean bool
}

func (s *Scope) bind(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVarP(&s.Namespaces, "namespace", "n", nil, "namespace of the snapshot to read (repeatable)")
	fs.BoolVarP(&s.AllNamespaces, "all-namespaces", "A", false, "every namespace")
	fs.StringArrayVar(&s.Kinds, "kind", nil, "only objects of this kind: Deployment, deployments, deployments.apps, deploy (repeatable)")
	fs.StringArrayVar(&s.Names, "name", nil, "only objects of this name (repeatable)")
	fs.StringVarP(&s.Selector, "selector", "l", "", "only objects whose labels match, e.g. app=web,tier!=db")
}

func (s *Scope) validate() error {
	if len(s.Namespaces) > 0 && s.AllNamespaces {
		return cmdutil.UsageError("-n and --all-namespaces exclude each other")
	}
	sel, err := labels.Parse(s.Selector)
	if err != nil {
		return cmdutil.UsageError("-l %q: %v", s.Selector, err)
	}
	s.selector = sel
	return nil
}

// clusterScoped reports whether cluster-scoped objects are in scope:
// only when no namespace is named.
func (s *Scope) clusterScoped() bool { return len(s.Namespaces) == 0 }

func (s *Scope) keepNamespace(ns string) bool {
	if ns == "" {
		return !s.namespacedOnly && s.clusterScoped()
	}
	if len(s.Namespaces) == 0 {
		return true
	}
	for _, n := range s.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// shortNames are kubectl's short names for the kinds people restore.
var shortNames = map[string]string{
	"cm": "configmaps", "deploy": "deployments", "svc": "services", "ns": "namespaces", "sa": "serviceaccounts",
	"pvc": "persistentvolumeclaims", "pv": "persistentvolumes", "crd": "customresourcedefinitions", "crds": "customresourcedefinitions",
	"sts": "statefulsets", "ds": "daemonsets", "rs": "replicasets", "po": "pods", "ing": "ingresses", "cj": "cronjobs",
	"netpol": "networkpolicies", "pdb": "poddisruptionbudgets", "hpa": "horizontalpodautoscalers", "ep": "endpoints", "sc": "storageclasses",
}

// kindMatches reports whether the user's word k names the object: its
// kind, resource, or either with the group, case-insensitively.
func kindMatches(k string, o object) bool {
	k = strings.ToLower(k)
	if full, ok := shortNames[k]; ok {
		k = full
	}
	kind := strings.ToLower(o.Obj.GetKind())
	for _, name := range []string{kind, o.Resource} {
		if k == name || (o.Group != "" && k == name+"."+o.Group) {
			return true
		}
	}
	return false
}

// match applies kind, name and label filters to a decoded object.
func (s *Scope) match(o object) bool {
	if o.Obj == nil {
		return len(s.Kinds) == 0 && len(s.Names) == 0 && s.Selector == ""
	}
	if len(s.Kinds) > 0 {
		ok := false
		for _, k := range s.Kinds {
			ok = ok || kindMatches(k, o)
		}
		if !ok {
			return false
		}
	}
	if len(s.Names) > 0 {
		ok := false
		for _, n := range s.Names {
			ok = ok || n == o.Name
		}
		if !ok {
			return false
		}
	}
	return s.selector == nil || s.selector.Matches(labels.Set(o.Obj.GetLabels()))
}

// selection is what a scope picked from a restore point, and what the
// restore point holds besides, for errors that list it.
type selection struct {
	objects []object
	// namespaces are every namespace the snapshot holds objects in.
	namespaces map[string]bool
	// inNamespaces are the objects of the scope's namespaces, before
	// kind, name and label filters.
	inNamespaces []object
	// extra are the objects the reader asked for besides (read's also).
	extra []object
}

// read decodes the objects in the scope's namespaces and filters them;
// objects outside the scope that also (may be nil) keeps go to extra.
func (s *Scope) read(rp *restorePoint, also func(registry.Ref) bool) (*selection, error) {
	sel := &selection{namespaces: map[string]bool{}}
	err := rp.each(func(ref registry.Ref) bool {
		if ref.Namespace != "" {
			sel.namespaces[ref.Namespace] = true
		} else if ref.Resource == "namespaces" && ref.Group == "" {
			sel.namespaces[ref.Name] = true
		}
		return s.keepNamespace(ref.Namespace) || (also != nil && also(ref))
	}, func(o object) error {
		if !s.keepNamespace(o.Namespace) {
			sel.extra = append(sel.extra, o)
			return nil
		}
		if s.lean && o.Obj != nil {
			o.Obj = thin(o.Obj)
		}
		sel.inNamespaces = append(sel.inNamespaces, o)
		if s.match(o) {
			sel.objects = append(sel.objects, o)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sel, s.check(rp, sel)
}

// check turns a scope that names what the restore point lacks into an
// error listing what it holds.
func (s *Scope) check(rp *restorePoint, sel *selection) error {
	for _, n := range s.Namespaces {
		if !sel.namespaces[n] {
			return fmt.Errorf("snapshot %s holds no namespace %q; it holds %s", rp.snap.Name, n, list(keys(sel.namespaces)))
		}
	}
	if len(s.Kinds) > 0 {
		kinds := map[string]bool{}
		for _, o := range sel.inNamespaces {
			if o.Obj != nil {
				kinds[o.Obj.GetKind()] = true
			}
		}
		for _, k := range s.Kinds {
			found := false
			for _, o := range sel.inNamespaces {
				found = found || (o.Obj != nil && kindMatches(k, o))
			}
			if !found {
				return fmt.Errorf("snapshot %s holds no %s%s; kinds there: %s", rp.snap.Name, k, s.where(), list(keys(kinds)))
			}
		}
	}
	if len(s.Names) > 0 {
		names := map[string]bool{}
		for _, o := range sel.inNamespaces {
			if o.Obj != nil && (len(s.Kinds) == 0 || kindOnly(s, o)) {
				names[o.Name] = true
			}
		}
		for _, n := range s.Names {
			if !names[n] {
				what := "object"
				if len(s.Kinds) > 0 {
					what = strings.Join(s.Kinds, " or ")
				}
				return fmt.Errorf("snapshot %s holds no %s named %q%s; names there: %s", rp.snap.Name, what, n, s.where(), list(keys(names)))
			}
		}
	}
	return nil
}

// kindOnly reports whether o passes the scope's kind filter alone.
func kindOnly(s *Scope, o object) bool {
	for _, k := range s.Kinds {
		if kindMatches(k, o) {
			return true
		}
	}
	return false
}

func (s *Scope) where() string {
	if len(s.Namespaces) > 0 {
		return " in namespace " + strings.Join(s.Namespaces, ", ")
	}
	return ""
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// list shows at most 30 names.
func list(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	if len(names) > 30 {
		return strings.Join(names[:30], ", ") + fmt.Sprintf(" and %d more", len(names)-30)
	}
	return strings.Join(names, ", ")
}

// thin keeps what a listing prints and a scope checks: apiVersion, kind,
// name, namespace, labels, creation time and owner references.
func thin(u *unstructured.Unstructured) *unstructured.Unstructured {
	md := map[string]any{}
	if src, ok := u.Object["metadata"].(map[string]any); ok {
		for _, k := range []string{"name", "namespace", "labels", "creationTimestamp", "ownerReferences"} {
			if v, ok := src[k]; ok {
				md[k] = v
			}
		}
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": u.Object["apiVersion"], "kind": u.Object["kind"], "metadata": md}}
}
