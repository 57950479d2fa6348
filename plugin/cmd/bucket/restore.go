package bucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Environment variables holding the credentials of the bucket a restore
// writes into (the application's, not the backup store's).
const (
	EnvAccessKey = "DR_APP_S3_ACCESS_KEY_ID"
	EnvSecretKey = "DR_APP_S3_SECRET_ACCESS_KEY"
)

// RestoreOptions for `kubectl dr bucket restore`.
type RestoreOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Source         string
	To             string
	Backup         string
	Prefix         string
	TargetBucket   string
	TargetEndpoint string
	AccessKeyFile  string
	SecretKeyFile  string
	KeyFile        string
	Concurrency    int
	DryRun         bool
	Yes            bool
	Output         string
	// AllowUnsigned takes --backup's time from a set whose record carries
	// no signature.
	AllowUnsigned bool
	to            time.Time
}

// NewCmdRestore returns `kubectl dr bucket restore`.
func NewCmdRestore(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "restore SOURCE --to TIME|--backup ID",
		Short: "Put a bucket back as it was at a time (into itself, or another bucket)",
		Long: `Compares the bucket as the store's copy says it was at --to with what the
target bucket holds now, prints the plan (objects to create, overwrite and
delete; the rest is left alone), and after --yes (or a yes on a terminal)
writes only what differs. Every object is checked against its recorded
sha256 before it is written. Restoring into the original bucket first saves
each object it will overwrite or delete into the store, so the restore can
itself be undone (kubectl dr bucket versions shows them "saved aside").
--backup ID takes the time of the source's pass in that backup set.

The target defaults to the original bucket and endpoint; --target-bucket
names another bucket (s3://NAME, or file:///DIR for a local copy). Its
credentials come from --access-key-file/--secret-key-file or $` + EnvAccessKey + `
and $` + EnvSecretKey + `.`,
		Example: `  kubectl dr bucket restore app-media --to 2026-03-01T12:00:00Z --dry-run
  kubectl dr bucket restore app-media --backup before-upgrade --yes
  kubectl dr bucket restore app-media --to 2026-03-01T12:00:00Z --yes
  kubectl dr bucket restore app-media --to 2026-03-01T12:00:00Z --target-bucket scratch --prefix photos/ --yes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("bucket restore takes one SOURCE")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.To, "to", "", "the time to restore the bucket to (RFC 3339, or now)")
	fl.StringVar(&o.Backup, "backup", "", "restore the bucket as the pass of this backup set left it (instead of --to)")
	fl.StringVar(&o.Prefix, "prefix", "", "only keys starting with this")
	fl.StringVar(&o.TargetBucket, "target-bucket", "", "write into this bucket (NAME, s3://NAME or file:///DIR) instead of the original")
	fl.StringVar(&o.TargetEndpoint, "target-endpoint", "", "the target bucket's S3 endpoint (default the original's)")
	fl.StringVar(&o.AccessKeyFile, "access-key-file", "", "file holding the target bucket's access key (default $"+EnvAccessKey+")")
	fl.StringVar(&o.SecretKeyFile, "secret-key-file", "", "file holding the target bucket's secret key (default $"+EnvSecretKey+")")
	fl.StringVar(&o.KeyFile, "key-file", "", "the snapshot key (age identity) the copies are encrypted to (default $DR_SNAPSHOT_KEY, else the install's Secret)")
	fl.IntVar(&o.Concurrency, "concurrency", 8, "objects written at once")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan, write nothing")
	fl.BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage+" (of --backup's set)")
	fl.BoolVar(&o.Yes, "yes", false, "write without asking")
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes SOURCE and --to.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) error {
	o.Source = args[0]
	switch {
	case o.To != "" && o.Backup != "":
		return cmdutil.UsageError("--to and --backup both pick the time: give one")
	case o.Backup != "":
		return nil
	case o.To == "":
		return cmdutil.UsageError("bucket restore needs --to TIME (RFC 3339, or now) or --backup ID")
	}
	var err error
	o.to, err = parseTime("to", o.To)
	return err
}

// Validate checks the flags.
func (o *RestoreOptions) Validate() error {
	if o.Concurrency < 1 {
		return cmdutil.UsageError("--concurrency %d: want at least 1", o.Concurrency)
	}
	return cmdutil.ValidateOutput(o.Output)
}

// target opens the bucket to write into and says whether it is the
// source's own.
func (o *RestoreOptions) target(idx *bucketobj.Index) (objstore.Bucket, bool, error) {
	origURL, origEndpoint := origin(idx)
	url, endpoint := origURL, origEndpoint
	if o.TargetBucket != "" {
		url = o.TargetBucket
		if !strings.Contains(url, "://") {
			url = "s3://" + url
		}
	}
	if o.TargetEndpoint != "" {
		endpoint = o.TargetEndpoint
	}
	if url == "" {
		return nil, false, fmt.Errorf("the store's copy of %s does not say which bucket it came from: give --target-bucket and --target-endpoint", o.Source)
	}
	cfg := objstore.Config{URL: url, Endpoint: endpoint, PathStyle: true,
		AccessKeyFile: o.AccessKeyFile, SecretKeyFile: o.SecretKeyFile}
	if strings.HasPrefix(url, "s3://") {
		if o.AccessKeyFile == "" {
			cfg.AccessKey = os.Getenv(EnvAccessKey)
		}
		if o.SecretKeyFile == "" {
			cfg.SecretKey = os.Getenv(EnvSecretKey)
		}
		if cfg.AccessKeyFile == "" && cfg.SecretKeyFile == "" && (cfg.AccessKey == "" || cfg.SecretKey == "") {
			return nil, false, fmt.Errorf("no credentials for the target bucket %s: give --access-key-file and --secret-key-file, or set %s and %s", url, EnvAccessKey, EnvSecretKey)
		}
	}
	b, err := objstore.OpenBucket(cfg)
	if err != nil {
		return nil, false, err
	}
	return b, url == origURL && strings.TrimRight(endpoint, "/") == strings.TrimRight(origEndpoint, "/"), nil
}

// listAll lists the whole target under prefix.
func listAll(ctx context.Context, b objstore.Bucket, prefix string) ([]objstore.BucketObject, error) {
	var all []objstore.BucketObject
	after := ""
	for {
		page, more, err := b.List(ctx, prefix, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if !more || len(page) == 0 {
			return all, nil
		}
		after = page[len(page)-1].Key
	}
}

// Run plans, asks, saves aside and writes.
func (o *RestoreOptions) Run(ctx context.Context) error {
	st, idx, err := loadIndex(ctx, o.f, o.Source)
	if err != nil {
		return err
	}
	if o.Backup != "" {
		if o.to, err = passOfSet(ctx, st, cmdutil.RecordPolicy(ctx, o.f, o.AllowUnsigned), o.Backup, o.Source); err != nil {
			return err
		}
	}
	target, original, err := o.target(idx)
	if err != nil {
		return err
	}
	have, err := listAll(ctx, target, o.Prefix)
	if err != nil {
		return fmt.Errorf("list the target: %w", err)
	}
	plan := bucketobj.MakePlan(idx.At(o.to, o.Prefix), have)
	view := printers.NewBucketRestore()
	view.Source, view.To, view.Target, view.Prefix = o.Source, o.to, target.String(), o.Prefix
	view.Create, view.Overwrite, view.Delete, view.Unchanged = len(plan.Create), len(plan.Overwrite), len(plan.Delete), plan.Same
	for _, v := range plan.Create {
		view.Changes = append(view.Changes, printers.BucketChange{Action: "create", Key: v.Key, Size: v.Size, Time: v.Time})
		view.Bytes += v.Size
	}
	for _, v := range plan.Overwrite {
		view.Changes = append(view.Changes, printers.BucketChange{Action: "overwrite", Key: v.Key, Size: v.Size, Time: v.Time})
		view.Bytes += v.Size
	}
	for _, d := range plan.Delete {
		view.Changes = append(view.Changes, printers.BucketChange{Action: "delete", Key: d.Key, Size: d.Size})
	}
	sort.SliceStable(view.Changes, func(i, j int) bool { return view.Changes[i].Key < view.Changes[j].Key })
	fmt.Fprintln(o.ErrOut, view.Summary())
	changes := len(view.Changes)
	if o.DryRun || changes == 0 {
		if changes == 0 {
			fmt.Fprintln(o.ErrOut, "Nothing to do: the target already holds the bucket as it was then.")
		}
		return printers.Print(o.Out, o.Output, view)
	}
	if !o.Yes {
		if o.Output == printers.Table || o.Output == printers.Wide {
			if err := printers.Print(o.ErrOut, o.Output, view); err != nil {
				return err
			}
		}
		if !cmdutil.Confirm(os.Stdin, o.ErrOut, fmt.Sprintf("Write %d object(s) and delete %d in %s?", len(plan.Create)+len(plan.Overwrite), len(plan.Delete), target)) {
			return cmdutil.UsageError("not confirmed: nothing was written; look at the plan with --dry-run and pass --yes")
		}
	}
	id, err := o.f.SnapshotKey(ctx, o.KeyFile)
	if err != nil {
		return err
	}
	var identity age.Identity
	if id != nil {
		identity = id
	}
	if original && len(plan.Overwrite)+len(plan.Delete) > 0 {
		n, err := o.saveAside(ctx, st, target, id, plan)
		if err != nil {
			return fmt.Errorf("save what the restore replaces (nothing was written to %s): %w", target, err)
		}
		view.SavedAside = n
		fmt.Fprintf(o.ErrOut, "Saved %d object(s) the restore replaces into the store.\n", n)
	}
	if err := o.write(ctx, st, target, identity, append(plan.Create, plan.Overwrite...)); err != nil {
		return err
	}
	for _, d := range plan.Delete {
		if err := target.Delete(ctx, d.Key); err != nil {
			return fmt.Errorf("delete %q: %w", d.Key, err)
		}
	}
	view.Done = true
	fmt.Fprintf(o.ErrOut, "Restored %s to %s: %d written, %d deleted.\n", target, o.to.Format(time.RFC3339), len(plan.Create)+len(plan.Overwrite), len(plan.Delete))
	return printers.Print(o.Out, o.Output, view)
}

// saveAside copies the objects the restore will overwrite or delete into
// the store and records them in an aside segment, before anything changes.
func (o *RestoreOptions) saveAside(ctx context.Context, st objstore.Store, target objstore.Bucket, id *age.X25519Identity, plan bucketobj.Plan) (int, error) {
	w := &bucketobj.BlobWriter{Store: st, Source: o.Source}
	if id != nil {
		w.Recipient = id.Recipient()
	}
	var keys []string
	for _, v := range plan.Overwrite {
		keys = append(keys, v.Key)
	}
	for _, d := range plan.Delete {
		keys = append(keys, d.Key)
	}
	var entries []bucketobj.Version
	for _, k := range keys {
		rc, info, err := target.Get(ctx, k)
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		saved, err := w.Save(ctx, rc, info.Size)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("save %q: %w", k, err)
		}
		entries = append(entries, bucketobj.Version{Key: k, Time: info.Modified.UTC(), Size: saved.Size, ETag: info.ETag,
			MD5: saved.MD5, SHA256: saved.SHA256, Blob: saved.Blob})
	}
	if len(entries) == 0 {
		return 0, nil
	}
	seg := &bucketobj.Segment{Source: o.Source, Pass: time.Now().UTC(), Aside: true, Entries: entries}
	if err := bucketobj.WriteSegment(ctx, st, seg); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// write puts each version into the target, Concurrency at once; each is
// read back from the store and checked whole (a small object in memory,
// a bigger one into a temporary file) before the target sees a byte. A
// pack holding many of them is read once.
func (o *RestoreOptions) write(ctx context.Context, st objstore.Store, target objstore.Bucket, identity age.Identity, vs []bucketobj.Version) error {
	err := bucketobj.ReadEach(ctx, st, o.Source, vs, identity, o.Concurrency, func(v bucketobj.Version, r io.Reader) error {
		return writeOne(ctx, target, v, r)
	})
	if err != nil {
		return fmt.Errorf("restore stopped (objects written so far stay; run it again to finish): %w", err)
	}
	return nil
}

func writeOne(ctx context.Context, target objstore.Bucket, v bucketobj.Version, r io.Reader) error {
	if br, ok := r.(*bytes.Reader); ok {
		// Checked already, whole, in memory (an object from a pack).
		if err := target.Put(ctx, v.Key, br, v.Size); err != nil {
			return fmt.Errorf("write %q: %w", v.Key, err)
		}
		return nil
	}
	tmp, err := os.CreateTemp("", "dr-bucket-restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("read %q from the store: %w", v.Key, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := target.Put(ctx, v.Key, tmp, v.Size); err != nil {
		return fmt.Errorf("write %q: %w", v.Key, err)
	}
	return nil
}

// passOfSet is the time of source's pass in backup set id.
func passOfSet(ctx context.Context, st objstore.Store, records signature.Policy, id, source string) (time.Time, error) {
	set, err := backupset.Verified(ctx, st, records, id)
	if err != nil {
		return time.Time{}, fmt.Errorf("--backup %s: %w", id, err)
	}
	for _, b := range set.Buckets {
		if b.Source != source {
			continue
		}
		if b.Error != "" {
			return time.Time{}, fmt.Errorf("backup %s has no pass of bucket source %s: it failed (%s); pick another set or --to TIME", id, source, b.Error)
		}
		return b.Pass, nil
	}
	return time.Time{}, fmt.Errorf("backup %s has no pass of bucket source %s (sets made before bucket sources were configured have none); use --to TIME", id, source)
}

// Restore puts source's bucket back as it was at to, into the original
// bucket (its credentials from the environment), writing only what
// differs: kubectl dr recover's bucket layer. keyFile names the snapshot
// key ("" for the default).
func Restore(ctx context.Context, f cmdutil.Factory, streams genericiooptions.IOStreams, source string, to time.Time, keyFile string) error {
	o := &RestoreOptions{IOStreams: streams, f: f, Source: source, To: to.Format(time.RFC3339Nano), to: to, KeyFile: keyFile, Concurrency: 8, Yes: true, Output: printers.Table}
	return o.Run(ctx)
}
