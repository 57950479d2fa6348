package config

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// installOwned are the keys install sets from its flags and Secrets, with
// what to do instead; set refuses them so the two never disagree.
func installOwned() map[string]string {
	return map[string]string{
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
}

// NewCmdConfig returns the config command group.
func NewCmdConfig(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the agents' configuration (schedules, retention, paths, WAL sources)",
		Args:  cmdutil.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(NewCmdGet(f, streams), NewCmdSet(f, streams))
	return cmd
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
