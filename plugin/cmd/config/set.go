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

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
)

// SetOptions for `kubectl dr config set`.
type SetOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Wait    bool
	Timeout time.Duration

	changes []install.Change
}

// NewCmdSet returns `kubectl dr config set`.
func NewCmdSet(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
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
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.UsageError("config set takes one or more KEY=VALUE")
			}
			return nil
		},
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().BoolVar(&o.Wait, "wait", o.Wait, "wait until every agent runs the new configuration")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 3*time.Minute, "how long to wait")
	return cmd
}

// Complete parses KEY=VALUE arguments.
func (o *SetOptions) Complete(_ *cobra.Command, args []string) error {
	for _, a := range args {
		c, err := install.ParseChange(a)
		if err != nil {
			return err
		}
		o.changes = append(o.changes, c)
	}
	return nil
}

// Validate has nothing to check beyond what Complete parsed.
func (o *SetOptions) Validate() error { return nil }

// Run writes the changed configuration, re-applies the DaemonSet when its
// mounts change, and waits for the agents.
func (o *SetOptions) Run(ctx context.Context) error {
	ns := o.f.AgentNamespace()
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
	if err := install.CheckHostKeys(ctx, cs, ns, tree); err != nil {
		return err
	}
	for _, c := range o.changes {
		if err := c.Apply(tree); err != nil {
			return cmdutil.UsageError("%w", err)
		}
	}
	data, err := install.MarshalConfig(tree)
	if err != nil {
		return cmdutil.UsageError("nothing changed: %w", err)
	}
	if err := install.CheckChangeKeepsHostKeys(ctx, cs, ns, tree); err != nil {
		return err
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
	return o.waitAgents(ctx, sha(data))
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// waitAgents polls every agent's Info until all run the configuration
// whose sha256 is want.
func (o *SetOptions) waitAgents(ctx context.Context, want string) error {
	timeout := o.Timeout
	start := time.Now()
	deadline := start.Add(timeout)
	done := map[string]bool{}
	for {
		nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		state := map[string]string{}
		// An agent reached directly (--agent, $KUBECTL_DR_AGENTS) runs
		// outside the DaemonSet from its own configuration file: the
		// ConfigMap does not reach it.
		var pods agentclient.Nodes
		for _, n := range nodes {
			if n.Pod == nil && n.Address != "" {
				if !done[n.Node] {
					done[n.Node] = true
					fmt.Fprintf(o.ErrOut, "node %s: reached directly (%s), not through the DaemonSet: its agent reads its own configuration file, not waited for\n", n.Node, n.Address)
				}
				continue
			}
			pods = append(pods, n)
		}
		for _, n := range pods {
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
		for _, n := range pods {
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
		if len(pods) > 0 && len(waiting) == 0 {
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
