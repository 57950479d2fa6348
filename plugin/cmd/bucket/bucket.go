package bucket

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// NewCmdBucket returns the bucket command group.
func NewCmdBucket(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bucket",
		Short: "Application buckets: list, versions, point-in-time restore, backup now",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.BindStoreFlags(cmd.PersistentFlags())
	cmd.AddCommand(NewCmdList(f, streams), NewCmdVersions(f, streams), NewCmdRestore(f, streams), NewCmdBackup(f, streams))
	return cmd
}

// loadIndex reads the source's version index from the store.
func loadIndex(ctx context.Context, f cmdutil.Factory, source string) (objstore.Store, *bucketobj.Index, error) {
	if err := bucketobj.ValidSource(source); err != nil {
		return nil, nil, cmdutil.UsageError("%v", err)
	}
	st, err := f.OpenStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	idx, err := bucketobj.Load(ctx, st, source)
	if err != nil {
		return nil, nil, err
	}
	if len(idx.Segments) == 0 {
		return nil, nil, fmt.Errorf("the store %s holds no copy of bucket source %q: is it configured (buckets.sources in the agent config) and has a pass run? kubectl dr bucket backup %s runs one", st, source, source)
	}
	return st, idx, nil
}

// parseTime reads --at and --to: RFC 3339, or "now".
func parseTime(flag, v string) (time.Time, error) {
	if v == "" || v == "now" {
		return time.Now().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, cmdutil.UsageError("--%s %q: want a time such as 2026-03-01T12:00:00Z (RFC 3339) or now", flag, v)
	}
	return t, nil
}

// origin is the bucket a source backs up, as its newest segment names it
// ("s3://BUCKET at ENDPOINT").
func origin(idx *bucketobj.Index) (bucket, endpoint string) {
	for i := len(idx.Segments) - 1; i >= 0; i-- {
		if b := idx.Segments[i].Bucket; b != "" {
			url, ep, _ := strings.Cut(b, " at ")
			return url, ep
		}
	}
	return "", ""
}
