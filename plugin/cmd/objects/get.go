package objects

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// GetOptions for `kubectl dr objects get`.
type GetOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source
	Scope
	Output string
}

// NewCmdGet returns `kubectl dr objects get`.
func NewCmdGet(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &GetOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "get [SNAPSHOT | --backup ID | --latest] KIND/NAME [-n NS] [-o yaml|json]",
		Short: "Print one object as a restore point holds it",
		Long: `Prints one object of an etcd snapshot as it was stored (decoded, Secrets
decrypted), the way kubectl get -o yaml prints a live one. Without -n the
object is looked for in every namespace.`,
		Example: `  kubectl dr objects get --latest deployment/web -n team-a
  kubectl dr objects get --backup nightly-20260301 configmap/settings -n team-a -o json`,
		Args:              cobra.RangeArgs(1, 2),
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	o.Source.bind(cmd)
	o.verb = "read"
	cmd.Flags().StringArrayVarP(&o.Namespaces, "namespace", "n", nil, "namespace of the object")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// Complete takes [SNAPSHOT] KIND/NAME.
func (o *GetOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 2 {
		o.Snapshot = args[0]
	}
	kind, name, ok := strings.Cut(args[len(args)-1], "/")
	if !ok || kind == "" || name == "" {
		return cmdutil.UsageError("%q: name the object as KIND/NAME, e.g. deployment/web", args[len(args)-1])
	}
	o.Kinds, o.Names = []string{kind}, []string{name}
	return nil
}

// Validate checks the flags.
func (o *GetOptions) Validate() error {
	if err := o.Source.validate(); err != nil {
		return err
	}
	if o.Output != "yaml" && o.Output != "json" {
		return cmdutil.UsageError("unknown output format %q: use yaml or json", o.Output)
	}
	if len(o.Namespaces) > 1 {
		return cmdutil.UsageError("get takes one -n")
	}
	return o.Scope.validate()
}

// Run prints the object.
func (o *GetOptions) Run(ctx context.Context) error {
	rp, err := o.Source.open(ctx, o.f, o.ErrOut)
	if err != nil {
		return err
	}
	defer rp.Close()
	// Cluster-scoped objects are found without -n, namespaced ones in any
	// namespace.
	scope := o.Scope
	sel, err := scope.read(rp, nil)
	if err != nil {
		return err
	}
	switch len(sel.objects) {
	case 0:
		return fmt.Errorf("snapshot %s holds no %s/%s", rp.snap.Name, o.Kinds[0], o.Names[0])
	case 1:
	default:
		var where []string
		for _, ob := range sel.objects {
			where = append(where, ob.Namespace)
		}
		return cmdutil.UsageError("%s/%s is in several namespaces of snapshot %s (%s): pick one with -n", o.Kinds[0], o.Names[0], rp.snap.Name, strings.Join(where, ", "))
	}
	ob := sel.objects[0]
	if ob.Err != nil {
		return fmt.Errorf("%s: %w", ob.Key, ob.Err)
	}
	if o.Output == "json" {
		return (&printers.JSONPrinter{}).PrintObj(ob.Obj, o.Out)
	}
	return (&printers.YAMLPrinter{}).PrintObj(ob.Obj, o.Out)
}
