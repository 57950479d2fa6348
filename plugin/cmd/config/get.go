package config

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
)

// GetOptions for `kubectl dr config get`.
type GetOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Key string
}

// NewCmdGet returns `kubectl dr config get`.
func NewCmdGet(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &GetOptions{IOStreams: streams, f: f}
	return &cobra.Command{
		Use:   "get [KEY]",
		Short: "Print the agents' configuration, or one key of it (dotted: etcd.schedule)",
		Example: `  kubectl dr config get
  kubectl dr config get etcd.retention`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return cmdutil.UsageError("config get takes at most one KEY, got %q", args)
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
}

// Complete takes KEY.
func (o *GetOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Key = args[0]
	}
	return nil
}

// Validate has nothing to check.
func (o *GetOptions) Validate() error { return nil }

// Run prints the configuration file, or the key's value.
func (o *GetOptions) Run(ctx context.Context) error {
	cs, err := o.f.Clientset()
	if err != nil {
		return err
	}
	ns := o.f.AgentNamespace()
	cm, tree, err := install.ReadConfig(ctx, cs, ns)
	if err != nil {
		return err
	}
	if cm == nil {
		return fmt.Errorf("no ConfigMap %s/%s: is kubectl dr installed? (kubectl dr install)", ns, install.ConfigMapName)
	}
	if o.Key == "" {
		_, err := fmt.Fprint(o.Out, cm.Data[install.ConfigKey])
		return err
	}
	v, ok := install.Lookup(tree, o.Key)
	if !ok {
		return fmt.Errorf("%s is not set: the agent uses its default (see `kubectl dr config get` for what is set)", o.Key)
	}
	return o.printValue(v)
}

func (o *GetOptions) printValue(v any) error {
	switch v.(type) {
	case map[string]any, []any:
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(data)
		return err
	}
	_, err := fmt.Fprintln(o.Out, v)
	return err
}
