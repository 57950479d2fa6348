package snapshot

import (
	"context"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// DownloadOptions for `kubectl dr etcd snapshot download`.
type DownloadOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Name    string
	File    string
	KeyFile string
}

// NewCmdDownload returns `kubectl dr etcd snapshot download`.
func NewCmdDownload(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DownloadOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "download NAME --to FILE [--key-file KEY]",
		Short: "Fetch a snapshot from the store as a plain etcd snapshot file",
		Long: `Downloads a snapshot straight from the store (no agent needed), decrypts and
decompresses it in one pass, and checks the stored and the raw sha256 before
FILE appears. The result is what ` + "`etcdutl snapshot restore`" + ` and
` + "`k3s server --cluster-reset-restore-path`" + ` take.`,
		Example: `  kubectl dr etcd snapshot download on-demand-server-1-1795285773 --to ./snap.db --key-file ~/dr-snapshot.key`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("%s needs exactly one snapshot name", cmd.CommandPath())
			}
			if o.File == "" {
				return cmdutil.UsageError("--to FILE is required")
			}
			return nil
		},
		RunE:              cmdutil.RunE(o),
		ValidArgsFunction: cmdutil.Complete(1, Names(f)),
	}
	cmd.Flags().StringVar(&o.File, "to", "", "file to write; refused if it exists")
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "snapshot key (age identity) for encrypted snapshots (default $"+cmdutil.EnvSnapshotKey+", else the install's Secret "+cmdutil.SnapshotKeySecret+")")
	return cmd
}

// Complete takes NAME.
func (o *DownloadOptions) Complete(_ *cobra.Command, args []string) error {
	o.Name = args[0]
	return nil
}

// Validate has nothing to check beyond the arguments.
func (o *DownloadOptions) Validate() error { return nil }

// Run fetches, decrypts, decompresses and verifies the snapshot into File.
func (o *DownloadOptions) Run(ctx context.Context) error {
	name := o.Name
	if _, err := os.Stat(o.File); err == nil {
		return fmt.Errorf("%s exists: nothing is overwritten; choose another --to", o.File)
	}
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	list, _, err := dbsnap.ListStore(ctx, store)
	if err != nil {
		return err
	}
	snap, ok := dbsnap.Find(list, name)
	if !ok {
		return fmt.Errorf("no etcd snapshot named %q in %s: `kubectl dr etcd snapshot ls` lists them", name, store)
	}
	var id age.Identity
	if snap.Encrypted() {
		x, err := o.f.SnapshotKey(ctx, o.KeyFile)
		if err != nil {
			return err
		}
		if x != nil {
			id = x
		}
	}
	// A bar on a terminal; nothing otherwise (the closing line says it all).
	bar := printers.NewProgress(o.ErrOut, "")
	progress := dbsnap.WithProgress(func(done int64) {
		bar.Update(printers.ProgressEvent{Phase: "download " + snap.Name, BytesDone: done, BytesTotal: snap.Size})
	})
	err = dbsnap.Fetch(ctx, store, snap, id, o.File, progress)
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "downloaded %s (revision %d, %d bytes, sha256 %s verified) to %s\n", snap.Name, snap.Revision, snap.Size, snap.SHA256, o.File)
	return nil
}
