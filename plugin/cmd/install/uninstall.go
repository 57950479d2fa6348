package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// UninstallOptions for `kubectl dr uninstall`.
type UninstallOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Yes     bool
	Wait    bool
	Timeout time.Duration
}

// NewCmdUninstall returns the uninstall command.
func NewCmdUninstall(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{IOStreams: streams, f: f, Wait: true}
	cmd := &cobra.Command{
		Use:   "uninstall [--yes]",
		Short: "Remove what install made from the cluster; the store and its backups stay",
		Long: `Uninstall deletes the DaemonSet, its configuration, RBAC and Secrets, and the
namespace when install made it. It never touches the store: every backup
stays. The Secrets include the restic password and the snapshot key; keep
copies outside the cluster before uninstalling, or the backups cannot be
read again. Files on the nodes (the agent's state directory, files a
restore moved aside) are left alone.`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&o.Wait, "wait", o.Wait, "wait until the namespace is gone (a new install can follow at once)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long to wait")
	return cmd
}

// Complete has nothing to resolve.
func (o *UninstallOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate has nothing to check.
func (o *UninstallOptions) Validate() error { return nil }

// Run deletes the installed objects, namespaced ones first.
func (o *UninstallOptions) Run(ctx context.Context) error {
	ns := o.f.AgentNamespace()
	cs, err := o.f.Clientset()
	if err != nil {
		return err
	}
	objs, err := Embedded()
	if err != nil {
		return err
	}
	var namespaced, cluster []*unstructured.Unstructured
	var nsObj *unstructured.Unstructured
	for _, name := range []string{AgentTLSSecret, cmdutil.ClientTLSSecret, cmdutil.StoreSecret, cmdutil.SnapshotKeySecret, RecipientSecret, ResticSecret} {
		namespaced = append(namespaced, secret(name, nil))
	}
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Namespace":
			obj.SetName(ns)
			nsObj = obj
		case "ClusterRole", "ClusterRoleBinding":
			cluster = append(cluster, obj)
		default:
			obj.SetNamespace(ns)
			namespaced = append(namespaced, obj)
		}
	}
	for _, s := range namespaced {
		s.SetNamespace(ns)
	}
	// The namespace goes only when install made it (it carries the label).
	deleteNS := false
	if n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		deleteNS = n.Labels[PartOfLabel] == PartOfValue
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s: %w", ns, err)
	}

	if !o.Yes {
		q := fmt.Sprintf("Delete the dr-agent DaemonSet, its RBAC and configuration, and the Secrets in %s (with the restic password and the snapshot key: keep copies)?", ns)
		if deleteNS {
			q = fmt.Sprintf("Delete the namespace %s with the dr-agent DaemonSet and its Secrets (with the restic password and the snapshot key: keep copies), and the agent's RBAC?", ns)
		}
		if !cmdutil.Confirm(o.In, o.ErrOut, q) {
			return cmdutil.UsageError("nothing removed; run again with --yes to uninstall (the store is never touched)")
		}
	}
	a, err := newApplier(o.f)
	if err != nil {
		return err
	}
	order := append(namespaced, cluster...)
	if deleteNS {
		order = append(order, nsObj)
	}
	for _, obj := range order {
		gone, err := a.delete(ctx, obj)
		if err != nil {
			return err
		}
		state := "not found"
		if gone {
			state = "deleted"
		}
		fmt.Fprintf(o.ErrOut, "%s/%s %s\n", strings.ToLower(obj.GetKind()), obj.GetName(), state)
	}
	if deleteNS && o.Wait {
		deadline := time.Now().Add(o.Timeout)
		for {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("namespace %s is still terminating after %s (kubectl get ns %s -o yaml shows what holds it)", ns, o.Timeout, ns)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	fmt.Fprintf(o.Out, "kubectl dr uninstalled from namespace %s; the store and its backups were not touched\n", ns)
	return nil
}
