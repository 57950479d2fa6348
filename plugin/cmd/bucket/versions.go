package bucket

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// VersionsOptions for `kubectl dr bucket versions`.
type VersionsOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source, Key string
	Output      string
}

// NewCmdVersions returns `kubectl dr bucket versions`.
func NewCmdVersions(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionsOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "versions SOURCE KEY",
		Short: "List the versions the store keeps of one key, oldest first",
		Long: `Lists every version of KEY the store's copy of the bucket holds: when it
was written (or found deleted), its size and checksums. Works on any S3,
versioning enabled at the source or not.`,
		Example: `  kubectl dr bucket versions app-media "photos/cat 1.jpg"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return cmdutil.UsageError("bucket versions takes SOURCE and KEY")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE and KEY.
func (o *VersionsOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source, o.Key = args[0], args[1]
	return nil
}

// Validate checks -o.
func (o *VersionsOptions) Validate() error { return cmdutil.ValidateOutput(o.Output) }

// Run prints the key's versions.
func (o *VersionsOptions) Run(ctx context.Context) error {
	_, idx, err := loadIndex(ctx, o.f, o.Source)
	if err != nil {
		return err
	}
	list := printers.NewBucketObjectList(o.Source, "BucketVersionList")
	for _, s := range idx.Segments {
		for _, v := range s.Entries {
			if v.Key == o.Key {
				list.Items = append(list.Items, printers.BucketObject{Key: v.Key, Time: v.Time, Deleted: v.Deleted,
					Size: v.Size, ETag: v.ETag, SHA256: v.SHA256, Aside: s.Aside})
			}
		}
	}
	if len(list.Items) == 0 {
		return fmt.Errorf("the store keeps no version of %q in %s", o.Key, o.Source)
	}
	return printers.Print(o.Out, o.Output, list)
}
