package install

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// Owned are the configuration keys install sets from its flags and
// Secrets, with what to do instead; --set and config set refuse them so
// the two never disagree.
func Owned() map[string]string {
	return map[string]string{
		"clusterID":                  "it is the kube-system namespace's UID",
		"store":                      "re-run kubectl dr install --store ...",
		"tls":                        "install keeps the certificates in Secrets",
		"listen":                     "re-run kubectl dr install --agent-port ...",
		"metricsAddress":             "re-run kubectl dr install --agent-port ...",
		"dataDir":                    "re-run kubectl dr install --data-dir ...",
		"stateDir":                   "re-run kubectl dr install --state-dir ...",
		"nodeName":                   "each agent takes its pod's node name",
		"etcd.snapshotKeyFile":       "nodes hold only the snapshot key's recipient: re-run kubectl dr install --snapshot-key-file ... (the private key stays in Secret dr-snapshot-key)",
		"etcd.snapshotRecipientFile": "re-run kubectl dr install --snapshot-key-file ...",
		"restic.passwordFile":        "re-run kubectl dr install --restic-password-file ...",
		"restic.binary":              "the agent image ships restic",
		"restic.cacheDir":            "it is <state-dir>/restic-cache: re-run kubectl dr install --state-dir ...",
		// The host keys (agentconfig.HostKeys): the agent runs them or
		// writes beneath them as root on every node.
		"restore.flavor":       "re-run kubectl dr install --restore-flavor ...",
		"restore.stopCommand":  "re-run kubectl dr install --stop-command ... (the agent runs it as root on every node)",
		"restore.startCommand": "re-run kubectl dr install --start-command ... (the agent runs it as root on every node)",
		"restore.k3sBinary":    "re-run kubectl dr install --k3s-binary ... (the agent runs it as root on every node)",
		"restore.etcdDataDir":  "re-run kubectl dr install --etcd-data-dir ...",
		// The agent sends its service account's token there.
		"apiServer": "re-run kubectl dr install --api-server ... (the agents send their token there)",
	}
}

// ownedBy names the install-owned key that key is or lies under, the
// longest first ("" when none).
func ownedBy(key string) string {
	best := ""
	for owned := range Owned() {
		if (key == owned || strings.HasPrefix(key, owned+".")) && len(owned) > len(best) {
			best = owned
		}
	}
	return best
}

// ownedUnder names the install-owned keys below key, sorted: setting key
// as a whole would replace them.
func ownedUnder(key string) []string {
	var under []string
	for owned := range Owned() {
		if strings.HasPrefix(owned, key+".") {
			under = append(under, owned)
		}
	}
	slices.Sort(under)
	return under
}

// A Change sets or removes one dotted key of the agent configuration.
type Change struct {
	Key   string
	Value any
	Unset bool
}

// ParseChange reads KEY=VALUE: VALUE is YAML, an empty VALUE removes the
// key. Keys install owns are refused with what to do instead.
func ParseChange(arg string) (Change, error) {
	key, value, ok := strings.Cut(arg, "=")
	if !ok || key == "" {
		return Change{}, cmdutil.UsageError("%q: want KEY=VALUE (KEY= removes the key)", arg)
	}
	if owned := ownedBy(key); owned != "" {
		return Change{}, cmdutil.UsageError("%s is set by install, not by config keys: %s", key, Owned()[owned])
	}
	if under := ownedUnder(key); len(under) > 0 {
		return Change{}, cmdutil.UsageError("%s would replace %s, which install sets: set the keys below %s one at a time (%s.KEY=VALUE)", key, strings.Join(under, ", "), key, key)
	}
	if value == "" {
		return Change{Key: key, Unset: true}, nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		return Change{}, cmdutil.UsageError("%s: value %q is not YAML: %w", key, value, err)
	}
	return Change{Key: key, Value: v}, nil
}

// Apply makes the change in tree, creating maps on the way.
func (c Change) Apply(tree map[string]any) error {
	parts := strings.Split(c.Key, ".")
	m := tree
	for i, part := range parts[:len(parts)-1] {
		next, ok := m[part]
		if !ok {
			if c.Unset {
				return nil
			}
			child := map[string]any{}
			m[part] = child
			m = child
			continue
		}
		child, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %s is not a map", c.Key, strings.Join(parts[:i+1], "."))
		}
		m = child
	}
	last := parts[len(parts)-1]
	if c.Unset {
		delete(m, last)
	} else {
		m[last] = c.Value
	}
	return nil
}

// Lookup finds a dotted key in tree.
func Lookup(tree map[string]any, key string) (any, bool) {
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
