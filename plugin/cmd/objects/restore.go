package objects

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// FieldManager owns the fields a restore applies.
const FieldManager = "kubectl-dr"

// Existing says what a restore does with objects that exist.
const (
	ExistingSkip   = "skip"
	ExistingUpdate = "update"
)

// RestoreOptions for `kubectl dr objects restore`.
type RestoreOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source
	Scope
	Mappings []string
	Existing string
	// WithData restores the claims' files too, from the backup set.
	WithData    bool
	BindTimeout time.Duration
	DryRun      bool
	Yes         bool
	Output      string

	mapping map[string]string
}

// NewCmdRestore returns `kubectl dr objects restore`.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore [SNAPSHOT | --backup ID | --latest] (-n NS... | --all-namespaces) [--kind K] [--name N]... [-l SELECTOR]",
		Short: "Apply objects of a restore point back into the cluster",
		Long: `Applies the chosen namespaces' objects from an etcd snapshot with server-side
apply (field manager kubectl-dr), in dependency order: namespaces, CRDs,
RBAC, service accounts, config maps and secrets, claims, services,
workloads, custom resources. What the cluster assigns is not carried over
(uid, resourceVersion, managedFields, cluster IPs, node ports, volume
bindings); Pods, ReplicaSets and Jobs owned by a controller are left to it.
Existing objects are left alone unless --existing update. --with-data
(with --backup ID) also restores each claim's files from the backup set
into the volume the restored claim is bound to, after the file restore's
preview. Exit code 3 when some objects (or claims' files) failed; the
summary says which and why.`,
		Example: `  kubectl dr objects restore --latest -n team-a --dry-run -o json
  kubectl dr objects restore --backup nightly-20260301 -n team-a --yes
  kubectl dr objects restore --latest -n team-a --namespace-mapping team-a:team-a-copy --yes
  kubectl dr objects restore --latest -n team-a --kind configmap --name settings --existing update --yes
  kubectl dr objects restore --backup nightly-20260301 -n team-a --with-data --yes`,
		Args:              cobra.MaximumNArgs(1),
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	o.Source.bind(cmd)
	o.verb = "restore"
	o.Scope.bind(cmd)
	cmd.Flags().StringArrayVar(&o.Mappings, "namespace-mapping", nil, "restore namespace OLD as NEW (OLD:NEW, repeatable)")
	cmd.Flags().StringVar(&o.Existing, "existing", ExistingSkip, "objects that exist: skip (leave them alone) or update (apply the snapshot's fields over them)")
	cmd.Flags().BoolVar(&o.WithData, "with-data", false, "restore the claims' files too (needs --backup ID): into each restored claim's volume once it is bound, through the file restore's preview")
	cmd.Flags().DurationVar(&o.BindTimeout, "bind-timeout", 2*time.Minute, "with --with-data, how long to wait for a restored claim to be bound")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan (what would be created, updated or skipped and why); change nothing")
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "restore without asking")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SNAPSHOT.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Snapshot = args[0]
	}
	o.namespacedOnly = true
	return nil
}

// Validate checks the flags.
func (o *RestoreOptions) Validate() error {
	if err := o.Source.validate(); err != nil {
		return err
	}
	if len(o.Namespaces) == 0 && !o.AllNamespaces {
		return cmdutil.UsageError("name what to restore: -n NAMESPACE (repeatable) or --all-namespaces")
	}
	if o.WithData && o.Backup == "" {
		return cmdutil.UsageError("--with-data needs --backup ID: a backup set holds both the snapshot and the claims' files")
	}
	if o.Existing != ExistingSkip && o.Existing != ExistingUpdate {
		return cmdutil.UsageError("--existing %q: use skip or update", o.Existing)
	}
	if err := printers.ValidateOutput(o.Output); err != nil {
		return cmdutil.UsageError("%v", err)
	}
	o.mapping = map[string]string{}
	for _, m := range o.Mappings {
		from, to, ok := strings.Cut(m, ":")
		if !ok || from == "" || to == "" {
			return cmdutil.UsageError("--namespace-mapping %q: give OLD:NEW", m)
		}
		if errs := validation.IsDNS1123Label(to); len(errs) > 0 {
			return cmdutil.UsageError("--namespace-mapping %q: %q is no namespace name: %s", m, to, strings.Join(errs, "; "))
		}
		if len(o.Namespaces) > 0 && !o.keepNamespace(from) {
			return cmdutil.UsageError("--namespace-mapping %q: %s is not restored; add -n %s", m, from, from)
		}
		o.mapping[from] = to
	}
	return o.Scope.validate()
}

// Run reads the restore point, plans, and applies.
func (o *RestoreOptions) Run(ctx context.Context) error {
	if _, err := liveClusterID(ctx, o.f); err != nil {
		return fmt.Errorf("objects are restored through the API server, which did not answer: %w", err)
	}
	rp, err := o.Source.open(ctx, o.f, o.ErrOut)
	if err != nil {
		return err
	}
	defer rp.Close()
	sel, err := o.Scope.read(rp, func(ref registry.Ref) bool {
		return (ref.Group == "" && ref.Resource == "namespaces" && o.inScope(ref.Name)) ||
			(ref.Group == "apiextensions.k8s.io" && ref.Resource == "customresourcedefinitions") ||
			(o.WithData && ref.Group == "" && ref.Resource == "persistentvolumes")
	})
	if err != nil {
		return err
	}
	mapper, err := o.f.RESTMapper()
	if err != nil {
		return err
	}
	// kubectl's discovery cache may remember kinds whose CRD is gone: the
	// plan asks the API server what it serves now.
	if rm, ok := mapper.(meta.ResettableRESTMapper); ok {
		rm.Reset()
	}
	dyn, err := o.f.DynamicClient()
	if err != nil {
		return err
	}
	r := &restorer{o: o, mapper: mapper, dyn: dyn, uids: map[string]types.UID{}, crds: map[schema.GroupKind]bool{}}
	steps := r.plan(sel)
	if err := r.lookExisting(ctx, steps); err != nil {
		return err
	}
	var data []*claimData
	if o.WithData {
		if data, err = o.planData(ctx, sel, steps); err != nil {
			return err
		}
		o.describeData(data)
	}
	result := printers.NewObjectRestore(rp.snap.Name, o.DryRun)
	if o.DryRun {
		return o.print(result, steps)
	}
	if !o.Yes {
		_ = o.printTo(o.ErrOut, printers.NewObjectRestore(rp.snap.Name, true), steps)
		if !cmdutil.Confirm(o.In, o.ErrOut, "Restore these objects?") {
			return errors.New("nothing restored: confirm on a terminal, or pass --yes (--dry-run -o json prints the plan)")
		}
	}
	r.apply(ctx, steps)
	if err := o.print(result, steps); err != nil {
		return err
	}
	var dataErr error
	if len(data) > 0 {
		dataErr = o.restoreData(ctx, data)
	}
	if result.Failed > 0 {
		return cmdutil.Partial("%d of %d objects failed to restore (see the FAILED rows)", result.Failed, len(result.Items))
	}
	return dataErr
}

// planData reads the backup set and finds the files of the claims the
// restore brings back.
func (o *RestoreOptions) planData(ctx context.Context, sel *selection, steps []*step) ([]*claimData, error) {
	store, err := storeFor(ctx, o.f, o.FromCluster)
	if err != nil {
		return nil, err
	}
	set, err := backupset.Verified(ctx, store, o.records(ctx, o.f), o.Backup)
	if err != nil {
		return nil, err
	}
	pvs := map[string]*unstructured.Unstructured{}
	for _, e := range sel.extra {
		if e.Obj != nil && e.Group == "" && e.Resource == "persistentvolumes" {
			pvs[e.Name] = e.Obj
		}
	}
	return planData(set, steps, pvs)
}

func (o *RestoreOptions) inScope(ns string) bool {
	return o.AllNamespaces || o.keepNamespace(ns)
}

func (o *RestoreOptions) print(result *printers.ObjectRestore, steps []*step) error {
	return o.printTo(o.Out, result, steps)
}

func (o *RestoreOptions) printTo(w interface{ Write([]byte) (int, error) }, result *printers.ObjectRestore, steps []*step) error {
	for _, s := range steps {
		result.Items = append(result.Items, s.item)
	}
	result.Count()
	if err := printers.Print(w, o.Output, result); err != nil {
		return err
	}
	fmt.Fprintln(o.ErrOut, result.Summary())
	return nil
}

// restorer plans and applies one restore.
type restorer struct {
	o      *RestoreOptions
	mapper meta.RESTMapper
	dyn    dynamic.Interface

	mu sync.Mutex
	// uids maps an object's uid in the snapshot to its uid in the cluster.
	uids map[string]types.UID
	// crds are the kinds whose CRD this restore created.
	crds map[schema.GroupKind]bool
}

func newStep(u *unstructured.Unstructured, from string, mapping map[string]string) *step {
	s := &step{obj: strip(u, mapping), gvk: u.GroupVersionKind(), oldUID: string(u.GetUID()), src: u}
	s.rank = rankOf(s.gvk.GroupKind()) * 2
	s.item = printers.ObjectRestoreItem{
		Action: printers.ActionCreate, APIVersion: u.GetAPIVersion(), Kind: u.GetKind(),
		Namespace: s.obj.GetNamespace(), Name: s.obj.GetName(),
	}
	if from != "" && from != s.obj.GetNamespace() {
		s.item.FromNamespace = from
	}
	return s
}

// plan turns the selection into ordered steps.
func (r *restorer) plan(sel *selection) []*step {
	o := r.o
	var steps []*step
	crds := map[schema.GroupKind]*unstructured.Unstructured{}
	namespaceObjs := map[string]*unstructured.Unstructured{}
	for _, e := range sel.extra {
		if e.Obj == nil {
			continue
		}
		if e.Resource == "namespaces" {
			namespaceObjs[e.Name] = e.Obj
			continue
		}
		if e.Resource != "customresourcedefinitions" {
			continue
		}
		group, _, _ := unstructured.NestedString(e.Obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(e.Obj.Object, "spec", "names", "kind")
		crds[schema.GroupKind{Group: group, Kind: kind}] = e.Obj
	}
	namespaces := o.Namespaces
	if o.AllNamespaces {
		namespaces = keys(sel.namespaces)
	}
	for _, ns := range namespaces {
		u, ok := namespaceObjs[ns]
		if !ok {
			u = &unstructured.Unstructured{}
			u.SetAPIVersion("v1")
			u.SetKind("Namespace")
			u.SetName(ns)
		}
		steps = append(steps, newStep(u, "", o.mapping))
	}
	added := map[schema.GroupKind]bool{}
	for _, ob := range sel.objects {
		if ob.Err != nil {
			steps = append(steps, &step{rank: 99, item: printers.ObjectRestoreItem{
				Action: printers.ActionFail, Kind: ob.Resource, APIVersion: ob.Group, Namespace: mapped(o.mapping, ob.Namespace), Name: ob.Name,
				Reason: "cannot decode the stored object: " + ob.Err.Error(),
			}})
			continue
		}
		s := newStep(ob.Obj, ob.Namespace, o.mapping)
		if why := skipReason(ob.Obj); why != "" {
			s.item.Action, s.item.Reason = printers.ActionSkip, why
			steps = append(steps, s)
			continue
		}
		gk := s.gvk.GroupKind()
		if !builtinGroup(gk.Group) && !added[gk] {
			if _, err := r.mapper.RESTMapping(gk, s.gvk.Version); meta.IsNoMatchError(err) {
				if crd, ok := crds[gk]; ok {
					c := newStep(crd, "", nil)
					c.item.Reason = "defines " + gk.String()
					steps = append(steps, c)
					added[gk] = true
				}
			}
		}
		steps = append(steps, s)
	}
	// An owner restored with its dependents keeps the reference (rewritten
	// to its new uid, so it comes first); references to anything else go.
	rankOfUID := map[string]int{}
	for _, s := range steps {
		if s.oldUID != "" && s.item.Action != printers.ActionSkip && s.item.Action != printers.ActionFail {
			rankOfUID[s.oldUID] = s.rank
		}
	}
	for _, s := range steps {
		if s.obj == nil {
			continue
		}
		var keep []metav1.OwnerReference
		for _, ref := range s.obj.GetOwnerReferences() {
			if rk, ok := rankOfUID[string(ref.UID)]; ok {
				keep = append(keep, ref)
				if s.owners == nil {
					s.owners = map[string]bool{}
				}
				s.owners[string(ref.UID)] = true
				s.rank = max(s.rank, rk+1)
			}
		}
		s.obj.SetOwnerReferences(keep)
	}
	order(steps)
	return steps
}

func mapped(m map[string]string, ns string) string {
	if to, ok := m[ns]; ok {
		return to
	}
	return ns
}

// notServed means the API does not serve an object's kind or version.
type notServed struct{ msg string }

func (e *notServed) Error() string { return e.msg }

// resource maps a step's kind to what the API serves.
func (r *restorer) resource(s *step) (dynamic.ResourceInterface, error) {
	res, _, err := r.resourceKey(s)
	return res, err
}

// resourceKey is resource, and a key naming the resource and namespace.
func (r *restorer) resourceKey(s *step) (dynamic.ResourceInterface, string, error) {
	m, err := r.mapper.RESTMapping(s.gvk.GroupKind(), s.gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			if _, any := r.mapper.RESTMapping(s.gvk.GroupKind()); any == nil {
				return nil, "", &notServed{fmt.Sprintf("the API no longer serves %s, the version it was stored in", s.gvk.GroupVersion())}
			}
			return nil, "", &notServed{fmt.Sprintf("the API serves no %s and the snapshot holds no CRD for it", s.gvk.GroupKind())}
		}
		return nil, "", err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.dyn.Resource(m.Resource).Namespace(s.obj.GetNamespace()), m.Resource.String() + "/" + s.obj.GetNamespace(), nil
	}
	return r.dyn.Resource(m.Resource), m.Resource.String(), nil
}

// lookExisting decides create, update or skip for each step, with one
// list per resource and namespace rather than a get per object.
func (r *restorer) lookExisting(ctx context.Context, steps []*step) error {
	type group struct {
		res   dynamic.ResourceInterface
		steps []*step
	}
	groups := map[string]*group{}
	var order []*group
	for _, s := range steps {
		if s.item.Action != printers.ActionCreate {
			continue
		}
		res, key, err := r.resourceKey(s)
		if err != nil {
			var ns *notServed
			switch {
			case errors.As(err, &ns) && r.plannedCRD(steps, s):
			case errors.As(err, &ns):
				s.item.Action, s.item.Reason = printers.ActionSkip, err.Error()
			default:
				s.item.Action, s.item.Reason = printers.ActionFail, err.Error()
			}
			continue
		}
		g, ok := groups[key]
		if !ok {
			g = &group{res: res}
			groups[key] = g
			order = append(order, g)
		}
		g.steps = append(g.steps, s)
	}
	// One pseudo-step per group, so that each runs its list in parallel.
	var lists []*step
	byStep := map[*step]*group{}
	for _, g := range order {
		ls := &step{}
		byStep[ls] = g
		lists = append(lists, ls)
	}
	return r.each(ctx, lists, false, func(ctx context.Context, ls *step) {
		g := byStep[ls]
		live, err := listAll(ctx, g.res)
		for _, s := range g.steps {
			l, exists := live[s.obj.GetName()]
			switch {
			case err != nil:
				s.item.Action, s.item.Reason = printers.ActionFail, err.Error()
			case !exists:
			case l.deleting:
				s.item.Action, s.item.Reason = printers.ActionFail, "being deleted: restore again once it is gone"
			default:
				r.mu.Lock()
				r.uids[s.oldUID] = l.uid
				r.mu.Unlock()
				if r.o.Existing == ExistingUpdate && s.gvk.Kind != "Namespace" {
					s.item.Action, s.item.Reason = printers.ActionUpdate, "exists"
				} else {
					s.item.Action, s.item.Reason = printers.ActionSkip, "exists (--existing update applies the snapshot's fields over it)"
				}
			}
		}
	})
}

type liveObject struct {
	uid      types.UID
	deleting bool
}

// listAll lists a resource (in a namespace), a page at a time.
func listAll(ctx context.Context, res dynamic.ResourceInterface) (map[string]liveObject, error) {
	out := map[string]liveObject{}
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := res.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		for _, it := range list.Items {
			out[it.GetName()] = liveObject{uid: it.GetUID(), deleting: it.GetDeletionTimestamp() != nil}
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

// plannedCRD reports whether the plan restores the CRD s needs.
func (r *restorer) plannedCRD(steps []*step, s *step) bool {
	for _, c := range steps {
		if c.gvk.Kind == "CustomResourceDefinition" && c.item.Reason == "defines "+s.gvk.GroupKind().String() {
			return true
		}
	}
	return false
}

// apply applies the steps rank by rank, a few at a time within a rank.
func (r *restorer) apply(ctx context.Context, steps []*step) {
	_ = r.each(ctx, steps, true, func(ctx context.Context, s *step) {
		if s.item.Action != printers.ActionCreate && s.item.Action != printers.ActionUpdate {
			return
		}
		if err := r.applyOne(ctx, s); err != nil {
			s.item.Action, s.item.Reason = printers.ActionFail, err.Error()
			return
		}
		s.item.Done = true
	})
}

func (r *restorer) applyOne(ctx context.Context, s *step) error {
	if len(s.owners) > 0 {
		refs := s.obj.GetOwnerReferences()
		r.mu.Lock()
		for i := range refs {
			if uid, ok := r.uids[string(refs[i].UID)]; ok {
				refs[i].UID = uid
			}
		}
		r.mu.Unlock()
		s.obj.SetOwnerReferences(refs)
	}
	res, err := r.resource(s)
	if err != nil {
		return err
	}
	out, err := res.Apply(ctx, s.obj.GetName(), s.obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if apierrors.IsNotFound(err) && r.restoredCRD(s.gvk.GroupKind()) {
		// Established does not mean every API server handler serves the
		// new resource yet: the first apply that succeeds is the signal.
		out, err = r.applyOnceServed(ctx, res, s)
	}
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	r.mu.Lock()
	r.uids[s.oldUID] = out.GetUID()
	r.mu.Unlock()
	if s.gvk.Kind == "CustomResourceDefinition" && s.gvk.Group == "apiextensions.k8s.io" {
		if err := r.waitEstablished(ctx, res, s.obj.GetName()); err != nil {
			return err
		}
		group, _, _ := unstructured.NestedString(s.obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(s.obj.Object, "spec", "names", "kind")
		r.mu.Lock()
		r.crds[schema.GroupKind{Group: group, Kind: kind}] = true
		r.mu.Unlock()
	}
	return nil
}

// restoredCRD reports whether this restore created the CRD of gk.
func (r *restorer) restoredCRD(gk schema.GroupKind) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.crds[gk]
}

// applyOnceServed applies a custom resource whose CRD was just created,
// again while the API answers that it serves no such resource.
func (r *restorer) applyOnceServed(ctx context.Context, res dynamic.ResourceInterface, s *step) (*unstructured.Unstructured, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the API did not serve %s within 30 s of its CRD being Established: %w", s.gvk.GroupKind(), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		out, err := res.Apply(ctx, s.obj.GetName(), s.obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if !apierrors.IsNotFound(err) {
			return out, err
		}
	}
}

// waitEstablished waits for a CRD's Established condition, then forgets
// what the mapper knew so that its kinds map.
func (r *restorer) waitEstablished(ctx context.Context, res dynamic.ResourceInterface, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		crd, err := res.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					if rm, ok := r.mapper.(meta.ResettableRESTMapper); ok {
						rm.Reset()
					}
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s is not Established after a minute: %v", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// parallel is how many objects of one rank are in flight at once.
const parallel = 8

// each runs fn over the steps, rank by rank when ordered (a rank starts
// when the one before has finished), a few steps at a time.
func (r *restorer) each(ctx context.Context, steps []*step, ordered bool, fn func(context.Context, *step)) error {
	for i := 0; i < len(steps); {
		j := len(steps)
		if ordered {
			j = i + 1
			for j < len(steps) && steps[j].rank == steps[i].rank {
				j++
			}
		}
		var wg sync.WaitGroup
		work := make(chan *step)
		for w := 0; w < parallel; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range work {
					fn(ctx, s)
				}
			}()
		}
		for _, s := range steps[i:j] {
			work <- s
		}
		close(work)
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
		i = j
	}
	return nil
}
