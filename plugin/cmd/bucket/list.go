package bucket

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ListOptions for `kubectl dr bucket ls`.
type ListOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source string
	At     string
	Prefix string
	Output string
	at     time.Time
}

// NewCmdList returns `kubectl dr bucket ls`.
func NewCmdList(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:     "ls SOURCE",
		Aliases: []string{"list"},
		Short:   "List a backed-up bucket's objects as they were at a time",
		Long: `Lists the objects of a bucket source as the store's copy says they were at
--at (default now: as of the newest pass), read from the store directly.`,
		Example: `  kubectl dr bucket ls app-media
  kubectl dr bucket ls app-media --at 2026-03-01T12:00:00Z --prefix photos/ -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("bucket ls takes one SOURCE")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.At, "at", "", "the time to list the bucket at (RFC 3339; default now)")
	cmd.Flags().StringVar(&o.Prefix, "prefix", "", "only keys starting with this")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE and --at.
func (o *ListOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	var err error
	o.at, err = parseTime("at", o.At)
	return err
}

// Validate checks -o.
func (o *ListOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run prints the bucket at the time.
func (o *ListOptions) Run(ctx context.Context) error {
	_, idx, err := loadIndex(ctx, o.f, o.Source)
	if err != nil {
		return err
	}
	list := printers.NewBucketObjectList(o.Source, "BucketObjectList")
	list.At = &o.at
	for _, v := range idx.At(o.at, o.Prefix) {
		list.Items = append(list.Items, printers.BucketObject{Key: v.Key, Time: v.Time, Size: v.Size, ETag: v.ETag, SHA256: v.SHA256})
	}
	for _, s := range idx.Skipped {
		fmt.Fprintln(o.ErrOut, "warning:", s)
	}
	if len(list.Items) == 0 && o.Output != printers.JSON && o.Output != printers.YAML {
		fmt.Fprintf(o.ErrOut, "No objects in %s at %s.\n", o.Source, o.at.Format(time.RFC3339))
		return nil
	}
	return printers.Print(o.Out, o.Output, list)
}
