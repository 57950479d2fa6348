package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/snapfile"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// ImportedNode is the node imported snapshots are filed under unless
// --node names one.
const ImportedNode = "imported"

// ImportOptions for `kubectl dr etcd snapshot import`.
type ImportOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	File        string
	Name        string
	Node        string
	NoHash      bool
	KeyFile     string
	Unencrypted bool
	Output      string
	k3s         k3sS3
	// originalName and modTime describe a file fetched from k3s's S3.
	originalName string
	modTime      time.Time
}

// NewCmdImport returns `kubectl dr etcd snapshot import`.
func NewCmdImport(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ImportOptions{IOStreams: streams, f: f}
	cmd := &cobra.Command{
		Use:   "import FILE|NAME [--name NAME] [--node NODE] [--no-hash]",
		Short: "Verify a snapshot made elsewhere and upload it into the catalog",
		Long: `Takes an etcd snapshot that kubectl dr did not make, on the machine running
this command, verifies it, and uploads it to the store like the agents' own
snapshots (compressed, encrypted with the snapshot key, the record written
last), marked with origin "imported" and the file's name, size and sha256.
kubectl dr etcd restore then takes it by its name.

It takes:
  - an etcdctl snapshot save file: its sha256 trailer is checked;
  - a k3s snapshot .zip (--etcd-snapshot-compress): one entry, unzipped
    streaming into a temporary file, its CRC and trailer checked;
  - a copy of a member's member/snap/db: it has no trailer, so it is refused
    unless --no-hash, and then every bucket and key of it is walked (like
    etcdutl's --skip-hash-check, but checked) and etcd's trailer is added.

NAME instead of FILE is one of k3s's own snapshots on a server (in
<data-dir>/server/db/snapshots/, listed by ls --all): that server's agent
verifies and uploads it the same way, filed under that node. A NAME no
server has is looked for in k3s's S3 (--k3s-s3-* flags, else k3s's Secret
kube-system/` + K3sS3Secret + `): downloaded here, verified the same way, and
filed under the node k3s recorded.

A truncated or damaged file is refused before anything is uploaded.`,
		Example: `  kubectl dr etcd snapshot import ./etcdctl-snap.db
  kubectl dr etcd snapshot import ./etcd-snapshot-server-1-1795285773.zip --node server-1
  kubectl dr etcd snapshot import ./db --no-hash --name member-copy
  kubectl dr etcd snapshot import etcd-snapshot-server-1-1795285773.zip --node server-1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageError("%s needs exactly one FILE", cmd.CommandPath())
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.Name, "name", "", "the snapshot's name in the catalog (default: the file's name without .zip)")
	cmd.Flags().StringVar(&o.Node, "node", "", "FILE: the node the snapshot is filed under (default "+ImportedNode+"); NAME: the server that has it")
	cmd.Flags().BoolVar(&o.NoHash, "no-hash", false, "accept a file without etcd's sha256 trailer (a member's db) after checking its bbolt structure")
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "snapshot key (age identity) to encrypt to (default $"+cmdutil.EnvSnapshotKey+", else the install's Secret "+cmdutil.SnapshotKeySecret+")")
	cmd.Flags().BoolVar(&o.Unencrypted, "unencrypted", false, "store it unencrypted when there is no snapshot key")
	o.k3s.addFlags(cmd.Flags())
	printers.OutputFlag(cmd, &o.Output)
	return cmd
}

// Complete takes FILE and the default name.
func (o *ImportOptions) Complete(_ *cobra.Command, args []string) error {
	o.File = args[0]
	if o.Name == "" {
		o.Name = strings.TrimSuffix(filepath.Base(o.File), ".zip")
	}
	return nil
}

// Validate checks the names before the file is read.
func (o *ImportOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if err := dbsnap.ValidateName(o.Name); err != nil {
		return cmdutil.UsageError("--name: %w", err)
	}
	if o.Node != "" {
		if err := dbsnap.ValidateName(o.Node); err != nil {
			return cmdutil.UsageError("--node: %w", err)
		}
	}
	return nil
}

// Run verifies the file, then uploads it and writes its record.
func (o *ImportOptions) Run(ctx context.Context) error {
	st, err := os.Stat(o.File)
	if errors.Is(err, os.ErrNotExist) && !strings.ContainsRune(o.File, os.PathSeparator) {
		return o.importK3s(ctx)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", o.File, err)
	}
	if o.Node == "" {
		o.Node = ImportedNode
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("import %s: not a regular file", o.File)
	}
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	var recipient age.Recipient
	id, err := o.f.SnapshotKey(ctx, o.KeyFile)
	if err != nil {
		return err
	}
	if id != nil {
		recipient = id.Recipient()
	} else if !o.Unencrypted {
		return errors.New("no snapshot key found (--key-file, $" + cmdutil.EnvSnapshotKey + ", or the install's Secret " + cmdutil.SnapshotKeySecret + "): give one, or --unencrypted to store the snapshot in the clear")
	}
	// Verified before anything is uploaded; a temporary copy (unzipped, or
	// with the trailer added) lives beside nothing of the user's.
	fmt.Fprintf(o.ErrOut, "verifying %s\n", o.File)
	file, err := snapfile.Verify(o.File, snapfile.Options{NoHash: o.NoHash})
	if err != nil {
		return fmt.Errorf("import refused, nothing was uploaded: %w", err)
	}
	defer file.Close()
	host, _ := os.Hostname()
	snap := &dbsnap.Snapshot{
		Name:     o.Name,
		Node:     o.Node,
		Created:  cmp.Or(o.modTime, st.ModTime()).UTC(),
		Revision: file.Revision,
		Size:     file.Size,
		SHA256:   file.SHA256,
		Origin:   dbsnap.OriginImported,
		Imported: &dbsnap.Imported{
			OriginalName: cmp.Or(o.originalName, filepath.Base(o.File)),
			Kind:         file.Kind,
			Size:         st.Size(),
			SHA256:       file.InputSHA256,
			EntryName:    file.EntryName,
			NoHash:       file.Kind == snapfile.KindBoltDB,
			Host:         host,
			ImportedAt:   time.Now().UTC(),
		},
	}
	if cid, err := o.f.ClusterID(ctx); err == nil {
		snap.ClusterID = cid
	}
	// kubectl dr vouches for what its user imports.
	sign, err := cmdutil.RecordSigner(ctx, o.f)
	if err != nil {
		return fmt.Errorf("import refused, nothing was uploaded: %w", err)
	}
	fmt.Fprintf(o.ErrOut, "uploading %s (%s) to %s\n", snap.Name, printers.HumanBytes(snap.Size), store)
	err = dbsnap.Put(ctx, store, snap, file.Path, recipient, sign)
	if errors.Is(err, dbsnap.ErrExists) {
		return fmt.Errorf("%w: give --name another name, or remove it first (kubectl dr etcd snapshot rm %s)", err, snap.Name)
	}
	if err != nil {
		return err
	}
	if o.Output == printers.JSON || o.Output == printers.YAML {
		return printers.Print(o.Out, o.Output, printers.NewEtcdSnapshot(snap))
	}
	fmt.Fprintf(o.Out, "imported %s as %s (node %s, revision %d, %s, sha256 %s verified)\n", file.Kind, snap.Name, snap.Node, snap.Revision, printers.HumanBytes(snap.Size), snap.SHA256)
	return nil
}

// importK3s has the agent of the server holding k3s's snapshot NAME
// verify and upload it.
func (o *ImportOptions) importK3s(ctx context.Context) error {
	nodes, connErr := connect(ctx, o.f)
	defer nodes.Close()
	var holders []*agentclient.Node
	var errs []error
	if connErr != nil {
		errs = append(errs, connErr)
	}
	for _, n := range nodes {
		if !n.Ready() || (o.Node != "" && n.Node != o.Node) {
			continue
		}
		resp, err := n.Conn.K3sSnapshots().ListK3SSnapshots(ctx, &agentv1.ListK3SSnapshotsRequest{})
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err)))
			continue
		}
		for _, f := range resp.Snapshots {
			if f.Name == o.File {
				holders = append(holders, n)
			}
		}
	}
	if len(holders) == 0 {
		done, err := o.importK3sS3(ctx)
		if done || err != nil {
			return err
		}
	}
	switch {
	case len(holders) == 0:
		err := fmt.Errorf("import %s: no such file here, and neither a server nor k3s's S3 has a k3s snapshot of that name (kubectl dr etcd snapshot ls --all lists them)", o.File)
		if len(errs) > 0 {
			err = fmt.Errorf("%w; %w", err, errors.Join(errs...))
		}
		return err
	case len(holders) > 1:
		names := make([]string, len(holders))
		for i, h := range holders {
			names[i] = h.Node
		}
		return cmdutil.UsageError("k3s snapshot %s is on %s: pick one with --node", o.File, strings.Join(names, ", "))
	}
	n := holders[0]
	fmt.Fprintf(o.ErrOut, "node %s verifies and uploads k3s snapshot %s\n", n.Node, o.File)
	resp, err := n.Conn.K3sSnapshots().ImportK3SSnapshot(ctx, &agentv1.ImportK3SSnapshotRequest{Name: o.File, NoHash: o.NoHash, CatalogName: o.Name})
	if err != nil {
		return fmt.Errorf("node %s: %s", n.Node, agentclient.Explain(err))
	}
	snap := agentclient.SnapshotFromProto(resp.Snapshot)
	if o.Output == printers.JSON || o.Output == printers.YAML {
		return printers.Print(o.Out, o.Output, printers.NewEtcdSnapshot(snap))
	}
	fmt.Fprintf(o.Out, "imported k3s snapshot %s as %s (node %s, revision %d, %s, sha256 %s verified)\n", o.File, snap.Name, snap.Node, snap.Revision, printers.HumanBytes(snap.Size), snap.SHA256)
	return nil
}

// importK3sS3 imports o.File from k3s's S3 when k3s's S3 is configured
// and holds it: done is false when it is not there.
func (o *ImportOptions) importK3sS3(ctx context.Context) (done bool, err error) {
	st, err := o.k3s.open(ctx, o.f)
	if err != nil || st == nil {
		return false, err
	}
	list, err := listK3sS3(ctx, st)
	if err != nil {
		return false, err
	}
	var snap *dbsnap.Snapshot
	for _, s := range list {
		if s.Name == o.File {
			snap = s
		}
	}
	if snap == nil {
		return false, nil
	}
	if o.Node != "" && snap.Node != "" && o.Node != snap.Node {
		return true, cmdutil.UsageError("k3s's S3 snapshot %s was taken on %s, not --node %s", snap.Name, snap.Node, o.Node)
	}
	if o.Node == "" && dbsnap.ValidateName(snap.Node) == nil {
		o.Node = snap.Node
	}
	dir, err := os.MkdirTemp("", "kubectl-dr-k3s-s3-")
	if err != nil {
		return true, err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(o.ErrOut, "downloading k3s's snapshot %s (%s) from %s\n", snap.Name, printers.HumanBytes(snap.Size), st)
	file, err := fetchK3sS3(ctx, st, snap, dir)
	if err != nil {
		return true, err
	}
	o.File, o.originalName, o.modTime = file, snap.Name, snap.Created
	return true, o.Run(ctx)
}
