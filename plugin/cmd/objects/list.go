package objects

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr objects ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source
	Scope
	Output string
}

// NewCmdList returns `kubectl dr objects ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls [SNAPSHOT | --backup ID | --latest] [-n NS | -A] [--kind K] [-l SELECTOR]",
		Aliases: []string{"list"},
		Short:   "List the objects a restore point holds",
		Long: `Lists the Kubernetes objects of an etcd snapshot: every namespace and the
cluster-scoped objects by default, one or more namespaces with -n. Ages are
as of the snapshot.`,
		Example: `  kubectl dr objects ls --latest -n team-a
  kubectl dr objects ls --backup nightly-20260301 -A --kind deployments -o wide
  kubectl dr objects ls on-demand-server-1-1795285773 -l app=web -o json`,
		Args:              cobra.MaximumNArgs(1),
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	o.Source.bind(cmd)
	o.verb = "read"
	o.Scope.bind(cmd)
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SNAPSHOT.
func (o *ListOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Snapshot = args[0]
	}
	o.lean = true
	return nil
}

// Validate checks the flags.
func (o *ListOptions) Validate() error {
	if err := o.Source.validate(); err != nil {
		return err
	}
	if err := printers.ValidateOutput(o.Output); err != nil {
		return cmdutil.UsageError("%v", err)
	}
	return o.Scope.validate()
}

// Run reads the restore point and prints its objects.
func (o *ListOptions) Run(ctx context.Context) error {
	rp, err := o.Source.open(ctx, o.f, o.ErrOut)
	if err != nil {
		return err
	}
	defer rp.Close()
	sel, err := o.Scope.read(rp, nil)
	if err != nil {
		return err
	}
	out := printers.NewStoredObjectList(rp.snap.Name, rp.snap.Revision, rp.snap.Created)
	for _, ob := range sel.objects {
		out.Items = append(out.Items, storedObject(ob))
	}
	sort.SliceStable(out.Items, func(i, j int) bool {
		a, b := out.Items[i], out.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return printers.Print(o.Out, o.Output, out)
}

func storedObject(ob object) printers.StoredObject {
	s := printers.StoredObject{Namespace: ob.Namespace, Name: ob.Name, Kind: ob.Resource}
	if ob.Err != nil {
		s.Error = ob.Err.Error()
		s.APIVersion = ob.Group
		return s
	}
	s.APIVersion, s.Kind, s.Labels = ob.Obj.GetAPIVersion(), ob.Obj.GetKind(), ob.Obj.GetLabels()
	if t := ob.Obj.GetCreationTimestamp(); !t.IsZero() {
		tt := t.Time
		s.Created = &tt
	}
	if c := metav1.GetControllerOfNoCopy(ob.Obj); c != nil {
		s.Owner = fmt.Sprintf("%s/%s", c.Kind, c.Name)
	}
	return s
}
