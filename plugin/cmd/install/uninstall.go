package install

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// UninstallOptions for `kubectl dr uninstall`.
type UninstallOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Yes        bool
	DeleteKeys bool
	Wait       bool
	Timeout    time.Duration
}

// keySecrets are the Secrets uninstall keeps unless --delete-keys: the
// keys to every backup.
func keySecrets() []string { return []string{cmdutil.SnapshotKeySecret, ResticSecret} }

// NewCmdUninstall returns the uninstall command.
func NewCmdUninstall(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{IOStreams: streams, f: f, Wait: true}
	cmd := &cobra.Command{
		Use:   "uninstall [--yes] [--delete-keys]",
		Short: "Remove what install made from the cluster; the store, its backups and their keys stay",
		Long: `Uninstall deletes the DaemonSet, its configuration, RBAC and Secrets, and the
namespace when install made it. It never touches the store: every backup
stays. The Secrets of the snapshot key and the restic password (the keys
that read every backup) are kept, with their namespace, and uninstall
prints how to copy them out: a new install uses them again.

--delete-keys deletes them too, after asking again on the terminal what
becomes unreadable (--yes does not answer that question). Files on the
nodes (the agent's state directory, files a restore moved aside) are left
alone.`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.Yes, "yes", false, "do not ask for confirmation (the question of --delete-keys is still asked)")
	cmd.Flags().BoolVar(&o.DeleteKeys, "delete-keys", false, "delete the snapshot key and restic password Secrets too: without a copy, no backup can be read again (asks on the terminal)")
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
	names := []string{agentclient.AgentCASecret, AgentTLSSecret, cmdutil.ClientTLSSecret, cmdutil.StoreSecret, NodeStoreSecret, RecipientSecret}
	if o.DeleteKeys {
		names = append(names, keySecrets()...)
	}
	// The bucket sources' credentials install stored (dr-bucket-NAME,
	// with install's label): they read the application's buckets, not
	// the backups, and go with the agents.
	bucketSecrets, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: PartOfLabel + "=" + PartOfValue})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("list Secrets in %s: %w", ns, err)
	default:
		names = append(names, bucketSecretNames(bucketSecrets.Items)...)
	}
	for _, name := range names {
		namespaced = append(namespaced, secret(name, nil))
	}
	legacy := legacyObjects()
	namespaced = append(namespaced, legacy...)
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
	// The namespace goes only when install made it (it carries the label),
	// and not while it keeps the keys.
	deleteNS := false
	if n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		deleteNS = n.Labels[PartOfLabel] == PartOfValue && o.DeleteKeys
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s: %w", ns, err)
	}
	var keys []string
	for _, name := range keySecrets() {
		_, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			keys = append(keys, name)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("read Secret %s/%s: %w", ns, name, err)
		}
	}

	if !o.Yes {
		q := fmt.Sprintf("Delete the dr-agent DaemonSet, its RBAC, configuration and certificates in %s (the store and the keys to its backups stay)?", ns)
		if o.DeleteKeys {
			q = fmt.Sprintf("Delete the dr-agent DaemonSet, its RBAC, configuration and Secrets in %s?", ns)
		}
		if !cmdutil.Confirm(o.In, o.ErrOut, q) {
			return cmdutil.UsageError("nothing removed; run again with --yes to uninstall (the store is never touched)")
		}
	}
	if o.DeleteKeys && len(keys) > 0 {
		q := fmt.Sprintf("Delete the Secrets %s too? They hold the snapshot key and the restic password: without a copy, every encrypted etcd snapshot, WAL segment and bucket copy, and every file backup in the store becomes unreadable, for good.", strings.Join(keys, " and "))
		if !cmdutil.Confirm(o.In, o.ErrOut, q) {
			return cmdutil.UsageError("nothing removed: --delete-keys asks on a terminal whether to delete %s, and was not told yes (--yes does not answer it); run uninstall without --delete-keys to keep them, or on a terminal to confirm", strings.Join(keys, " and "))
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
		} else if slices.Contains(legacy, obj) {
			continue
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
	if !o.DeleteKeys && len(keys) > 0 {
		fmt.Fprintf(o.ErrOut, "Kept the keys to every backup in namespace %s (a new install uses them again): %s. Keep copies outside the cluster:\n", ns, strings.Join(keys, ", "))
		for _, k := range keys {
			fmt.Fprintf(o.ErrOut, "  %s\n", backupCommand(ns, k))
		}
		fmt.Fprintf(o.ErrOut, "kubectl dr uninstall --delete-keys deletes them (and the namespace, when install made it).\n")
	}
	return nil
}

// backupCommand copies a key Secret out of the cluster.
func backupCommand(ns, name string) string {
	switch name {
	case cmdutil.SnapshotKeySecret:
		return fmt.Sprintf("kubectl -n %s get secret %s -o jsonpath='{.data.snapshot\\.key}' | base64 -d > dr-snapshot.key", ns, name)
	default:
		return fmt.Sprintf("kubectl -n %s get secret %s -o jsonpath='{.data.password}' | base64 -d > dr-restic.password", ns, name)
	}
}

// bucketSecretNames are the bucket sources' Secrets among secrets: named
// dr-bucket-NAME and labelled by install (a Secret of the same name that
// install did not make is not its to delete).
func bucketSecretNames(secrets []corev1.Secret) []string {
	var out []string
	for _, s := range secrets {
		if strings.HasPrefix(s.Name, BucketSecretPrefix) && s.Labels[PartOfLabel] == PartOfValue {
			out = append(out, s.Name)
		}
	}
	return out
}
