package install

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// existingState is what an earlier install left.
type existingState struct {
	config  map[string]any
	secrets map[string]map[string][]byte
}

// ReadConfig reads the agent config tree from the ConfigMap; nil when
// there is none.
func ReadConfig(ctx context.Context, cs kubernetes.Interface, ns string) (*corev1.ConfigMap, map[string]any, error) {
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read ConfigMap %s/%s: %w", ns, ConfigMapName, err)
	}
	tree, err := ParseConfig(cm.Data[ConfigKey])
	if err != nil {
		return nil, nil, fmt.Errorf("ConfigMap %s/%s: %w", ns, ConfigMapName, err)
	}
	return cm, tree, nil
}

func readExisting(ctx context.Context, cs kubernetes.Interface, ns string) (*existingState, error) {
	ex := &existingState{secrets: map[string]map[string][]byte{}}
	var err error
	if _, ex.config, err = ReadConfig(ctx, cs, ns); err != nil {
		return nil, err
	}
	for _, name := range []string{agentclient.AgentCASecret, AgentTLSSecret, cmdutil.ClientTLSSecret, cmdutil.StoreSecret, NodeStoreSecret, cmdutil.SnapshotKeySecret, ResticSecret} {
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("read Secret %s/%s: %w", ns, name, err)
		default:
			ex.secrets[name] = s.Data
		}
	}
	return ex, nil
}

// certValidity is how long the agents' certificates last; install renews
// them when less than certRenewal is left.
const (
	certValidity = 5 * 365 * 24 * time.Hour
	certRenewal  = 60 * 24 * time.Hour
)

// certificates keeps install's CA and the agents' bootstrap and client
// certificates of an earlier install while the CA's key is kept, all three
// chain to it and none is about to expire; otherwise it makes a new CA and
// both (the agents are enrolled again: their node certificates chain to
// the old CA).
func certificates(caOld, agentOld, clientOld map[string][]byte) (caData, agent, client map[string][]byte, fresh bool, err error) {
	if caUsable(caOld) && usable(agentOld) && usable(clientOld) &&
		string(agentOld["ca.crt"]) == string(caOld["ca.crt"]) && string(clientOld["ca.crt"]) == string(caOld["ca.crt"]) {
		return caOld, agentOld, clientOld, false, nil
	}
	ca, caPair, err := pki.NewCA("kubectl-dr agents CA")
	if err != nil {
		return nil, nil, nil, false, err
	}
	srv, err := ca.Issue(pki.LeafOptions{CommonName: pki.BootstrapName, DNSNames: []string{pki.BootstrapName}, Server: true, Validity: certValidity})
	if err != nil {
		return nil, nil, nil, false, err
	}
	cli, err := ca.Issue(pki.LeafOptions{CommonName: "kubectl-dr", Client: true, Validity: certValidity})
	if err != nil {
		return nil, nil, nil, false, err
	}
	caData = map[string][]byte{"ca.crt": caPair.CertPEM, "ca.key": caPair.KeyPEM}
	agent = map[string][]byte{"ca.crt": caPair.CertPEM, "tls.crt": srv.CertPEM, "tls.key": srv.KeyPEM}
	client = map[string][]byte{"ca.crt": caPair.CertPEM, "tls.crt": cli.CertPEM, "tls.key": cli.KeyPEM}
	if retired := retiredCAs(caOld, agentOld, clientOld); len(retired) > 0 {
		for _, d := range []map[string][]byte{caData, agent, client} {
			d[mtls.RetiredCAFile] = retired
		}
	}
	return caData, agent, client, true, nil
}

// retiredCAs is the PEM bundle of every CA certificate an earlier install
// used (its own, and those it had retired), each once: the agents' and
// the plugin's signatures on the store's records chain to them, and a
// renewal must not make every earlier backup unverifiable. Only
// certificates go in; their keys are gone with the old Secret.
func retiredCAs(old ...map[string][]byte) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	for _, d := range old {
		for _, data := range [][]byte{d[mtls.RetiredCAFile], d["ca.crt"]} {
			for rest := data; ; {
				var block *pem.Block
				block, rest = pem.Decode(rest)
				if block == nil {
					break
				}
				cert, err := x509.ParseCertificate(block.Bytes)
				if block.Type != "CERTIFICATE" || err != nil || !cert.IsCA || seen[string(block.Bytes)] {
					continue
				}
				seen[string(block.Bytes)] = true
				pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})
			}
		}
	}
	return out.Bytes()
}

// caUsable reports whether the CA Secret holds a CA and its key that last
// beyond the renewal window.
func caUsable(d map[string][]byte) bool {
	ca, err := pki.ParseCA(d["ca.crt"], d["ca.key"])
	return err == nil && time.Until(ca.Cert.NotAfter) >= certRenewal
}

// usable reports whether a TLS Secret's certificate chains to its CA and
// lasts beyond the renewal window.
func usable(d map[string][]byte) bool {
	if len(d["tls.key"]) == 0 {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d["ca.crt"]) {
		return false
	}
	block, _ := pem.Decode(d["tls.crt"])
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || time.Until(cert.NotAfter) < certRenewal {
		return false
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// access is one permission install needs.
type access struct {
	verb, group, resource, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.namespace != "" {
		return fmt.Sprintf("%s %s in namespace %s", a.verb, r, a.namespace)
	}
	return a.verb + " " + r
}

// needed lists what install does: server-side apply is get + create +
// patch; the wait lists the DaemonSet's pods.
func needed(ns string) []access {
	var out []access
	for _, r := range []struct{ group, resource, ns string }{
		{"", "namespaces", ""},
		{"rbac.authorization.k8s.io", "clusterroles", ""},
		{"rbac.authorization.k8s.io", "clusterrolebindings", ""},
		{"", "serviceaccounts", ns},
		{"", "secrets", ns},
		{"", "configmaps", ns},
		{"apps", "daemonsets", ns},
	} {
		for _, verb := range []string{"get", "create", "patch"} {
			out = append(out, access{verb, r.group, r.resource, r.ns})
		}
	}
	return append(out, access{"list", "", "pods", ns}, access{"create", "", "pods/portforward", ns})
}

// preflight asks the API server whether the user may do everything install
// does, and names every permission missing before anything is applied.
func preflight(ctx context.Context, cs kubernetes.Interface, ns string) error {
	var denied []string
	for _, a := range needed(ns) {
		resource, sub, _ := strings.Cut(a.resource, "/")
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Verb: a.verb, Group: a.group, Resource: resource, Subresource: sub, Namespace: a.namespace,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("ask the API server what this user may do: %w", err)
		}
		if !r.Status.Allowed {
			denied = append(denied, a.String())
		}
	}
	if len(denied) == 0 {
		return nil
	}
	who := "this user"
	if r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		who = fmt.Sprintf("user %q", r.Status.UserInfo.Username)
	}
	return fmt.Errorf("forbidden: %s may not:\n  %s\nnothing was applied: install creates the namespace %s, RBAC for the agent and a privileged DaemonSet, which needs a cluster admin (or a role granting the above)",
		who, strings.Join(denied, "\n  "), ns)
}

// applier server-side applies unstructured objects.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func newApplier(f cmdutil.Factory) (*applier, error) {
	dyn, err := f.DynamicClient()
	if err != nil {
		return nil, err
	}
	mapper, err := f.RESTMapper()
	if err != nil {
		return nil, err
	}
	return &applier{dyn: dyn, mapper: mapper}, nil
}

func (a *applier) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// apply returns created, configured or unchanged.
func (a *applier) apply(ctx context.Context, obj *unstructured.Unstructured) (string, error) {
	what := strings.ToLower(obj.GetKind()) + "/" + obj.GetName()
	ri, err := a.resource(obj)
	if err != nil {
		return "", fmt.Errorf("apply %s: %w", what, err)
	}
	before, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", explain(what, err)
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return "", err
	}
	force := true
	after, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return "", explain(what, err)
	}
	switch {
	case before == nil:
		return "created", nil
	case before.GetResourceVersion() == after.GetResourceVersion():
		return "unchanged", nil
	}
	return "configured", nil
}

// delete removes obj; gone is false when it was not there.
func (a *applier) delete(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	what := strings.ToLower(obj.GetKind()) + "/" + obj.GetName()
	ri, err := a.resource(obj)
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", what, err)
	}
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, explain(what, err)
	}
	return true, nil
}

// explain turns a Forbidden into what is missing and what to do.
func explain(what string, err error) error {
	if apierrors.IsForbidden(err) {
		msg := err.Error()
		if strings.Contains(msg, "escalat") {
			return fmt.Errorf("apply %s: %w\nthe agent's RBAC grants permissions this user does not hold itself; a cluster admin has to run install", what, err)
		}
		return fmt.Errorf("apply %s: %w\nask a cluster admin for this permission, or to run install", what, err)
	}
	return fmt.Errorf("apply %s: %w", what, err)
}

// waitDaemonSet prints a line whenever a node's agent pod changes state and
// returns when every node runs an up-to-date Ready pod.
func waitDaemonSet(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration, out io.Writer) error {
	start := time.Now()
	deadline := start.Add(timeout)
	seen := map[string]string{}
	for {
		ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("wait for DaemonSet %s/%s: %w", ns, name, err)
		}
		states, err := podStates(ctx, cs, ds)
		if err != nil {
			return err
		}
		nodes := make([]string, 0, len(states))
		for n := range states {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			if seen[n] != states[n] {
				seen[n] = states[n]
				fmt.Fprintf(out, "node %s: agent %s (%s)\n", n, states[n], time.Since(start).Round(time.Second))
			}
		}
		st := ds.Status
		if st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
			st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberReady == st.DesiredNumberScheduled &&
			st.NumberUnavailable == 0 {
			fmt.Fprintf(out, "dr-agent ready on %d node(s) after %s\n", st.NumberReady, time.Since(start).Round(time.Second))
			return nil
		}
		if time.Now().After(deadline) {
			var waiting []string
			for _, n := range nodes {
				if states[n] != "Ready" {
					waiting = append(waiting, n+": "+states[n])
				}
			}
			if st.DesiredNumberScheduled == 0 {
				waiting = append(waiting, "the DaemonSet schedules no pod: does the cluster have Ready nodes?")
			}
			return fmt.Errorf("the agents are not ready after %s:\n  %s\nsee kubectl -n %s describe pods -l app.kubernetes.io/name=dr-agent; the objects stay applied, re-run install or `kubectl dr status` once they are up",
				timeout, strings.Join(waiting, "\n  "), ns)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// podStates is, per node, the state of the DaemonSet's current pod there.
func podStates(ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet) (map[string]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the agent pods: %w", err)
	}
	gen := strconv.FormatInt(ds.Generation, 10)
	states := map[string]string{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Labels["pod-template-generation"] != gen || p.Spec.NodeName == "" {
			continue
		}
		states[p.Spec.NodeName] = podState(p)
	}
	return states, nil
}

func podState(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return "Ready"
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			s := cs.State.Waiting.Reason
			if m := cs.State.Waiting.Message; m != "" && s != "ContainerCreating" {
				s += ": " + m
			}
			return s
		case cs.State.Terminated != nil:
			return "Terminated: " + cs.State.Terminated.Reason
		case cs.State.Running != nil:
			return "Running, not ready"
		}
	}
	return string(p.Status.Phase)
}

// checkAgents has every node's agent write to the store.
func checkAgents(ctx context.Context, f cmdutil.Factory, out io.Writer) error {
	nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	lines := make([]string, len(nodes))
	failed := make([]string, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		if !n.Ready() {
			failed[i] = fmt.Sprintf("node %s: %v", n.Node, n.Err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			r, err := n.Conn.CheckStore(cctx, &agentv1.CheckStoreRequest{})
			switch {
			case err != nil:
				failed[i] = fmt.Sprintf("node %s: %s", n.Node, agentclient.Explain(err))
			case r.Error != "":
				failed[i] = fmt.Sprintf("node %s: %s", n.Node, r.Error)
			default:
				scope := ""
				if r.Scoped {
					scope = "; put/get only, its delete refused (scoped, as intended)"
				}
				lines[i] = fmt.Sprintf("node %s: agent %s writes to %s (%d ms%s)", n.Node, n.Info.AgentVersion, r.Store, r.DurationMs, scope)
			}
		}()
	}
	wg.Wait()
	var bad []string
	for i := range nodes {
		if lines[i] != "" {
			fmt.Fprintln(out, lines[i])
		}
		if failed[i] != "" {
			bad = append(bad, failed[i])
		}
	}
	if len(bad) > 0 {
		return cmdutil.Partial("installed, but these agents cannot use the store:\n  %s", strings.Join(bad, "\n  "))
	}
	if len(nodes) == 0 {
		return errors.New("installed, but no agent was found")
	}
	return nil
}

// RemountDaemonSet re-applies the DaemonSet for a changed configuration
// tree (its hostPath mounts follow the configured paths), keeping the live
// image.
func RemountDaemonSet(ctx context.Context, f cmdutil.Factory, tree map[string]any) error {
	cs, err := f.Clientset()
	if err != nil {
		return err
	}
	ns := f.AgentNamespace()
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, DaemonSetName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read DaemonSet %s/%s: %w", ns, DaemonSetName, err)
	}
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		return fmt.Errorf("DaemonSet %s/%s has %d containers, install makes one", ns, DaemonSetName, len(ds.Spec.Template.Spec.Containers))
	}
	listen, _ := tree["listen"].(string)
	_, p, _ := strings.Cut(listen, ":")
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("the configuration's listen %q has no port", listen)
	}
	dataDir, _ := tree["dataDir"].(string)
	stateDir, _ := tree["stateDir"].(string)
	objs, err := Render(Settings{
		Namespace: ns, Image: ds.Spec.Template.Spec.Containers[0].Image,
		DataDir: dataDir, StateDir: stateDir, Port: port, Config: tree,
		// The Secrets are not re-applied: the CA stays the pods' own.
		AgentCASHA256: ds.Spec.Template.Annotations[AgentCAAnnotation],
	})
	if err != nil {
		return err
	}
	a, err := newApplier(f)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		if obj.GetKind() == "DaemonSet" {
			_, err := a.apply(ctx, obj)
			return err
		}
	}
	return errors.New("manifests/ has no DaemonSet")
}

// CheckHostKeys refuses a configuration whose host keys
// (agentconfig.HostKeys) are not the ones the DaemonSet's agents accept
// (its --host-keys-sha256): someone changed them in the ConfigMap, and
// writing it again, or re-applying the DaemonSet from it, would carry
// their commands on. A DaemonSet without the flag (an install from before
// it) checks nothing.
func CheckHostKeys(ctx context.Context, cs kubernetes.Interface, ns string, tree map[string]any) error {
	same, err := sameHostKeys(ctx, cs, ns, tree)
	if err != nil || same {
		return err
	}
	return fmt.Errorf("the ConfigMap %s/%s holds host keys (%s) that kubectl dr install did not write: someone edited it, and the agents refuse it; nothing was written: look at kubectl dr config get restore, then re-run kubectl dr install with the flags you mean (--stop-command, --start-command, --k3s-binary, ...)",
		ns, ConfigMapName, strings.Join(agentconfig.HostKeys, ", "))
}

// CheckChangeKeepsHostKeys refuses a change (config set's, to a tree
// CheckHostKeys passed) that alters a host key: a key of a list, such as
// a bucket source's endpoint or key files, that ParseChange cannot refuse
// by its name.
func CheckChangeKeepsHostKeys(ctx context.Context, cs kubernetes.Interface, ns string, tree map[string]any) error {
	same, err := sameHostKeys(ctx, cs, ns, tree)
	if err != nil || same {
		return err
	}
	return cmdutil.UsageError("this change alters keys install owns (%s): the agents run what they name, write beneath it, or send what they read there, so only kubectl dr install changes them (--bucket-source for a bucket source's endpoint and key files, --api-server, --stop-command, ...); nothing was written",
		strings.Join(agentconfig.HostKeys, ", "))
}

// sameHostKeys reports whether tree's host keys are those the DaemonSet's
// agents accept (true when it gives them no digest, or is not there).
func sameHostKeys(ctx context.Context, cs kubernetes.Interface, ns string, tree map[string]any) (bool, error) {
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, DaemonSetName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read DaemonSet %s/%s: %w", ns, DaemonSetName, err)
	}
	want := ""
	for _, c := range ds.Spec.Template.Spec.Containers {
		for i, a := range c.Args {
			if a == hostKeysFlag && i+1 < len(c.Args) {
				want = c.Args[i+1]
			}
		}
	}
	if want == "" {
		return true, nil
	}
	_, parsed, err := marshalConfig(tree)
	if err != nil {
		return false, err
	}
	return parsed.HostKeysSHA256() == want, nil
}

// legacyObjects are what an earlier install applied and this one no longer
// does: a Role and RoleBinding granting the agent pods it never read.
// Install removes them; uninstall too.
func legacyObjects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, kind := range []string{"Role", "RoleBinding"} {
		out = append(out, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
			"metadata": map[string]any{"name": "dr-agent"},
		}})
	}
	return out
}
