package objects

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// DiffOptions for `kubectl dr objects diff`.
type DiffOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source
	Scope
	Details bool
	Output  string
}

// NewCmdDiff returns `kubectl dr objects diff`.
func NewCmdDiff(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DiffOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "diff [SNAPSHOT | --backup ID | --latest] [-n NS | -A] [--kind K] [--name N] [-l SELECTOR] [--details]",
		Short: "Compare a restore point with the live cluster",
		Long: `Compares the objects of an etcd snapshot with the live cluster, per namespace
and kind: unchanged, changed, added since the snapshot (live only) and
removed since (in the snapshot only). Both sides are compared as a restore
would apply them: what the cluster assigns (uid, resourceVersion,
managedFields, status of built-in kinds, cluster IPs, node ports, volume
bindings) does not count as a change, and what a restore leaves out
(controller-owned Pods and ReplicaSets, Events, Endpoints, Leases, service
account tokens) is not compared. --details adds a unified diff of each
object that differs (--- the snapshot, +++ live). Nothing is changed.`,
		Example: `  kubectl dr objects diff --latest -n team-a
  kubectl dr objects diff --backup nightly-20260301 -n team-a --kind configmap --name settings --details
  kubectl dr objects diff --latest -A -o json`,
		Args:              cobra.MaximumNArgs(1),
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	o.Source.bind(cmd)
	o.verb = "compare"
	o.Scope.bind(cmd)
	cmd.Flags().BoolVar(&o.Details, "details", false, "show a unified diff of every object that differs")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SNAPSHOT.
func (o *DiffOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Snapshot = args[0]
	}
	return nil
}

// Validate checks the flags.
func (o *DiffOptions) Validate() error {
	if err := o.Source.validate(); err != nil {
		return err
	}
	if err := printers.ValidateOutput(o.Output); err != nil {
		return cmdutil.UsageError("%v", err)
	}
	return o.Scope.validate()
}

// Run reads the restore point and the live objects of the same scope and
// compares them.
func (o *DiffOptions) Run(ctx context.Context) error {
	if _, err := liveClusterID(ctx, o.f); err != nil {
		return fmt.Errorf("diff compares with the live cluster, whose API server did not answer: %w", err)
	}
	rp, err := o.Source.open(ctx, o.f, o.ErrOut)
	if err != nil {
		return err
	}
	defer rp.Close()
	sel, err := o.Scope.read(rp, nil)
	if err != nil {
		return err
	}
	live, err := o.listLive(ctx, sel.objects)
	if err != nil {
		return err
	}
	var undecodable int
	for _, ob := range sel.objects {
		if ob.Err != nil {
			undecodable++
		}
	}
	if undecodable > 0 {
		fmt.Fprintf(o.ErrOut, "warning: %d object(s) of the snapshot cannot be decoded and are not compared (kubectl dr objects ls lists them with the reason)\n", undecodable)
	}
	d, err := compare(sel.objects, live, o.Details)
	if err != nil {
		return err
	}
	d.Snapshot, d.Revision = rp.snap.Name, rp.snap.Revision
	if err := printers.Print(o.Out, o.Output, d); err != nil {
		return err
	}
	if o.Details && (o.Output == printers.Table || o.Output == printers.Wide || o.Output == "") {
		for _, it := range d.Items {
			fmt.Fprintln(o.Out)
			io.WriteString(o.Out, it.Diff)
		}
	}
	fmt.Fprintln(o.ErrOut, d.Summary())
	return nil
}

// listLive lists the live objects in the scope: every resource the API
// serves that can be listed (the version the snapshot holds a kind in,
// when the API still serves it), in the scope's namespaces.
func (o *DiffOptions) listLive(ctx context.Context, stored []object) ([]object, error) {
	cs, err := o.f.Clientset()
	if err != nil {
		return nil, err
	}
	lists, err := cs.Discovery().ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discover the API's resources: %w", err)
	}
	mapper, err := o.f.RESTMapper()
	if err != nil {
		return nil, err
	}
	dyn, err := o.f.DynamicClient()
	if err != nil {
		return nil, err
	}
	storedVersion := map[schema.GroupKind]string{}
	for _, ob := range stored {
		if ob.Obj != nil {
			gvk := ob.Obj.GroupVersionKind()
			storedVersion[gvk.GroupKind()] = gvk.Version
		}
	}
	var out []object
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			gk := schema.GroupKind{Group: gv.Group, Kind: r.Kind}
			probe := &unstructured.Unstructured{}
			probe.SetGroupVersionKind(gk.WithVersion(gv.Version))
			if !o.kindInScope(object{Ref: registry.Ref{Group: gv.Group, Resource: r.Name}, Obj: probe}) {
				continue
			}
			if !r.Namespaced && !o.clusterScoped() {
				continue
			}
			gvr := gv.WithResource(r.Name)
			if v, ok := storedVersion[gk]; ok && v != gv.Version {
				if m, err := mapper.RESTMapping(gk, v); err == nil {
					gvr = m.Resource
				}
			}
			namespaces := []string{""}
			if r.Namespaced && len(o.Namespaces) > 0 {
				namespaces = o.Namespaces
			}
			for _, ns := range namespaces {
				var res dynamic.ResourceInterface = dyn.Resource(gvr)
				if r.Namespaced {
					res = dyn.Resource(gvr).Namespace(ns)
				}
				items, err := listItems(ctx, res)
				if err != nil {
					return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
				}
				for _, it := range items {
					ob := object{Ref: registry.Ref{Group: gv.Group, Resource: r.Name, Namespace: it.GetNamespace(), Name: it.GetName()}, Obj: it}
					if o.match(ob) {
						out = append(out, ob)
					}
				}
			}
		}
	}
	return out, nil
}

// kindInScope reports whether the scope's --kind takes a resource.
func (o *DiffOptions) kindInScope(ob object) bool {
	if len(o.Kinds) == 0 {
		return true
	}
	for _, k := range o.Kinds {
		if kindMatches(k, ob) {
			return true
		}
	}
	return false
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// listItems lists a resource, a page at a time.
func listItems(ctx context.Context, res dynamic.ResourceInterface) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := res.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

// compare sets the restore point's objects against the live ones: both
// stripped the way a restore strips (so that what the cluster assigns is
// no change), neither counting what a restore leaves out.
func compare(stored, live []object, details bool) (*printers.ObjectDiff, error) {
	type key struct {
		gk       schema.GroupKind
		ns, name string
	}
	type pair struct {
		kind, apiVersion string
		before, after    *unstructured.Unstructured
	}
	pairs := map[key]*pair{}
	add := func(ob object, stored bool) {
		if ob.Obj == nil || skipReason(ob.Obj) != "" {
			return
		}
		gvk := ob.Obj.GroupVersionKind()
		k := key{gvk.GroupKind(), ob.Obj.GetNamespace(), ob.Obj.GetName()}
		p, ok := pairs[k]
		if !ok {
			p = &pair{kind: gvk.Kind, apiVersion: ob.Obj.GetAPIVersion()}
			pairs[k] = p
		}
		if stored {
			p.before = strip(ob.Obj, nil)
		} else {
			p.after = strip(ob.Obj, nil)
		}
	}
	for _, ob := range stored {
		add(ob, true)
	}
	for _, ob := range live {
		add(ob, false)
	}
	keys := make([]key, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		if a.gk.Kind != b.gk.Kind {
			return a.gk.Kind < b.gk.Kind
		}
		if a.gk.Group != b.gk.Group {
			return a.gk.Group < b.gk.Group
		}
		return a.name < b.name
	})
	d := printers.NewObjectDiff("", 0)
	var g *printers.ObjectDiffGroup
	for _, k := range keys {
		p := pairs[k]
		if g == nil || g.Namespace != k.ns || g.Kind != p.kind {
			d.Groups = append(d.Groups, printers.ObjectDiffGroup{Namespace: k.ns, Kind: p.kind})
			g = &d.Groups[len(d.Groups)-1]
		}
		var before, after []byte
		var err error
		if p.before != nil {
			if before, err = yaml.Marshal(p.before.Object); err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", p.kind, k.ns, k.name, err)
			}
		}
		if p.after != nil {
			if after, err = yaml.Marshal(p.after.Object); err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", p.kind, k.ns, k.name, err)
			}
		}
		it := printers.ObjectDiffItem{APIVersion: p.apiVersion, Kind: p.kind, Namespace: k.ns, Name: k.name}
		switch {
		case p.after == nil:
			it.Change = printers.DiffRemoved
			g.Removed++
			d.Removed++
		case p.before == nil:
			it.Change = printers.DiffAdded
			it.APIVersion = p.after.GetAPIVersion()
			g.Added++
			d.Added++
		case string(before) == string(after):
			g.Unchanged++
			d.Unchanged++
			continue
		default:
			it.Change = printers.DiffChanged
			g.Changed++
			d.Changed++
		}
		if details {
			what := p.kind + " " + k.name
			if k.ns != "" {
				what = p.kind + " " + k.ns + "/" + k.name
			}
			it.Diff, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: difflib.SplitLines(string(before)), B: difflib.SplitLines(string(after)),
				FromFile: "snapshot: " + what, ToFile: "live: " + what, Context: 3,
			})
			if err != nil {
				return nil, err
			}
		}
		d.Items = append(d.Items, it)
	}
	return d, nil
}
