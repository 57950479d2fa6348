// Package config implements `kubectl dr config get|set`: the agents'
// configuration in the dr-agent-config ConfigMap. Agents reload a changed
// file without restarting; set waits until every one runs it.
package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
)

// installOwned are keys install sets from its flags and Secrets; set
// refuses them so the two never disagree.
var installOwned = map[string]string{
	"clusterID":            "it is the kube-system namespace's UID",
	"store":                "re-run kubectl dr install --store ...",
	"tls":                  "install keeps the certificates in Secrets",
	"listen":               "re-run kubectl dr install --agent-port ...",
	"metricsAddress":       "re-run kubectl dr install --agent-port ...",
	"dataDir":              "re-run kubectl dr install --data-dir ...",
	"stateDir":             "re-run kubectl dr install --state-dir ...",
	"nodeName":             "each agent takes its pod's node name",
	"etcd.snapshotKeyFile": "re-run kubectl dr install --snapshot-key-file ...",
	"restic.passwordFile":  "re-run kubectl dr install --restic-password-file ...",
	"restic.binary":        "the agent image ships restic",
}

// NewCmdConfig returns the config command group.
func NewCmdConfig(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the agents' configuration (schedules, retention, paths, WAL sources)",
	}
	cmd.AddCommand(newCmdGet(f, streams), newCmdSet(f, streams))
	return cmd
}

func newCmdGet(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "get [KEY]",
		Short: "Print the agents' configuration, or one key of it (dotted: etcd.schedule)",
		Example: `  kubectl dr config get
  kubectl dr config get etcd.retention`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			cm, tree, err := install.ReadConfig(cmd.Context(), cs, f.AgentNamespace)
			if err != nil {
				return err
			}
			if cm == nil {
				return fmt.Errorf("no ConfigMap %s/%s: is kubectl dr installed? (kubectl dr install)", f.AgentNamespace, install.ConfigMapName)
			}
			if len(args) == 0 {
				_, err := fmt.Fprint(streams.Out, cm.Data[install.ConfigKey])
				return err
			}
			v, ok := lookup(tree, args[0])
			if !ok {
				return fmt.Errorf("%s is not set: the agent uses its default (see `kubectl dr config get` for what is set)", args[0])
			}
			return printValue(streams, v)
		},
	}
}

func printValue(streams genericiooptions.IOStreams, v any) error {
	switch v.(type) {
	case map[string]any, []any:
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = streams.Out.Write(data)
		return err
	}
	_, err := fmt.Fprintln(streams.Out, v)
	return err
}

// SetOptions for `kubectl dr config set`.
type SetOptions struct {
	genericiooptions.IOStreams
	f *cmdutil.Factory

	Wait    bool
	Timeout time.Duration

	changes []change
}

type change struct {
	key   string
	value any
	unset bool
}

func newCmdSet(f *cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SetOptions{IOStreams: streams, f: f, Wait: true}
	cmd := &cobra.Command{
		Use:   "set KEY=VALUE...",
		Short: "Change keys of the agents' configuration; agents reload it without restarting",
		Long: `Set changes keys of the agent configuration (the ConfigMap dr-agent-config).
VALUE is YAML: a number, a string, a list [a, b] or a map {k: v}. KEY= (empty)
removes the key, so the agent's default applies. The whole configuration is
checked as the agent checks it before anything is written.

The kubelet delivers a changed ConfigMap to the pods within about a minute;
each agent then finishes what it is doing and reloads. set waits until every
agent runs the new configuration (--wait=false does not wait). New backup
paths, WAL spools or PostgreSQL data directories outside k3s's data dir are
mounted into the agents' pods, which restarts them (rolling).`,
		Example: `  kubectl dr config set etcd.schedule="0 */2 * * *" etcd.retention.keepDaily=14
  kubectl dr config set restic.schedule="30 2 * * *" restic.paths="[/var/lib/rancher/k3s/storage, /srv/data]"
  kubectl dr config set 'wal.sources=[{name: pg-main, spool: /var/lib/dr-wal/pg-main}]'
  kubectl dr config set restic.retention=`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.Wait, "wait", o.Wait, "wait until every agent runs the new configuration")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long to wait")
	return cmd
}

// Complete parses KEY=VALUE arguments.
func (o *SetOptions) Complete(args []string) error {
	for _, a := range args {
		key, value, ok := strings.Cut(a, "=")
		if !ok || key == "" {
			return cmdutil.UsageError("%q: want KEY=VALUE (KEY= removes the key)", a)
		}
		for owned, why := range installOwned {
			if key == owned || strings.HasPrefix(key, owned+".") {
				return cmdutil.UsageError("%s is set by install, not config set: %s", key, why)
			}
		}
		if value == "" {
			o.changes = append(o.changes, change{key: key, unset: true})
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return cmdutil.UsageError("%s: value %q is not YAML: %w", key, value, err)
		}
		o.changes = append(o.changes, change{key: key, value: v})
	}
	return nil
}

// Run writes the changed configuration, re-applies the DaemonSet when its
// mounts change, and waits for the agents.
func (o *SetOptions) Run(ctx context.Context) error {
	ns := o.f.AgentNamespace
	cs, err := o.f.Clientset()
	if err != nil {
		return err
	}
	cm, tree, err := install.ReadConfig(ctx, cs, ns)
	if err != nil {
		return err
	}
	if cm == nil {
		return fmt.Errorf("no ConfigMap %s/%s: is kubectl dr installed? (kubectl dr install)", ns, install.ConfigMapName)
	}
	oldMounts := install.HostMounts(tree, str(tree, "dataDir"), str(tree, "stateDir"))
	for _, c := range o.changes {
		if err := set(tree, c); err != nil {
			return cmdutil.UsageError("%w", err)
		}
	}
	data, err := install.MarshalConfig(tree)
	if err != nil {
		return cmdutil.UsageError("nothing changed: %w", err)
	}
	if data == cm.Data[install.ConfigKey] {
		fmt.Fprintln(o.ErrOut, "configuration unchanged")
		return nil
	}
	cm.Data[install.ConfigKey] = data
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: install.FieldManager}); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("the configuration changed while this ran; run config set again: %w", err)
		}
		return fmt.Errorf("update ConfigMap %s/%s: %w", ns, install.ConfigMapName, err)
	}
	fmt.Fprintf(o.ErrOut, "configmap/%s configured\n", install.ConfigMapName)
	if newMounts := install.HostMounts(tree, str(tree, "dataDir"), str(tree, "stateDir")); !slices.Equal(oldMounts, newMounts) {
		if err := install.RemountDaemonSet(ctx, o.f, tree); err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "daemonset/%s configured: the agents restart to mount %s\n", install.DaemonSetName, strings.Join(newMounts, ", "))
	}
	if !o.Wait {
		return nil
	}
	return waitAgents(ctx, o.f, sha(data), o.Timeout, o)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// waitAgents polls every agent's Info until all run the configuration
// whose sha256 is want.
func waitAgents(ctx context.Context, f *cmdutil.Factory, want string, timeout time.Duration, o *SetOptions) error {
	start := time.Now()
	deadline := start.Add(timeout)
	done := map[string]bool{}
	for {
		nodes, err := agentclient.Connect(ctx, f.AgentOptions(nil))
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		state := map[string]string{}
		for _, n := range nodes {
			if !n.Ready() {
				state[n.Node] = n.Err.Error()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				info, err := n.Conn.Info(cctx, &agentv1.InfoRequest{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					state[n.Node] = agentclient.Explain(err)
				case info.ConfigSha256 == want:
					state[n.Node] = ""
				case info.ConfigError != "":
					state[n.Node] = "refused the new configuration: " + info.ConfigError
				default:
					state[n.Node] = "still runs the previous configuration"
				}
			}()
		}
		wg.Wait()
		nodes.Close()
		var waiting []string
		for _, n := range nodes {
			if state[n.Node] == "" {
				if !done[n.Node] {
					done[n.Node] = true
					fmt.Fprintf(o.ErrOut, "node %s: agent runs the new configuration (%s)\n", n.Node, time.Since(start).Round(time.Second))
				}
				continue
			}
			if strings.HasPrefix(state[n.Node], "refused") {
				return fmt.Errorf("node %s: agent %s; it keeps the previous one", n.Node, state[n.Node])
			}
			waiting = append(waiting, "node "+n.Node+": "+state[n.Node])
		}
		if len(nodes) > 0 && len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the configuration is written, but not every agent runs it after %s:\n  %s", timeout, strings.Join(waiting, "\n  "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func str(tree map[string]any, key string) string {
	s, _ := tree[key].(string)
	return s
}

// lookup finds a dotted key.
func lookup(tree map[string]any, key string) (any, bool) {
	var cur any = tree
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// set applies one change to the tree, making maps on the way.
func set(tree map[string]any, c change) error {
	parts := strings.Split(c.key, ".")
	m := tree
	for i, part := range parts[:len(parts)-1] {
		next, ok := m[part]
		if !ok {
			if c.unset {
				return nil
			}
			child := map[string]any{}
			m[part] = child
			m = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %s is not a map", c.key, strings.Join(parts[:i+1], "."))
		}
		m = child
	}
	last := parts[len(parts)-1]
	if c.unset {
		delete(m, last)
	} else {
		m[last] = c.value
	}
	return nil
}
