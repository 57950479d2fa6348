package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/manifests"
)

// Names of what install makes, as manifests/ names them.
const (
	DaemonSetName = "dr-agent"
	ConfigMapName = "dr-agent-config"
	ConfigKey     = "config.yaml"
	// PartOfLabel marks every object install applies (kustomization.yaml
	// sets the same label); uninstall finds them by it.
	PartOfLabel = "app.kubernetes.io/part-of"
	PartOfValue = "kubectl-dr"
	// FieldManager owns the fields install applies (server-side apply).
	FieldManager = "kubectl-dr"

	// Where the DaemonSet mounts the Secrets in the agent's container.
	storeMount     = "/etc/dr-agent/store"
	recipientMount = "/etc/dr-agent/snapshot-recipient"
	// hostKeysFlag gives the agent the digest of the host keys.
	hostKeysFlag = "--host-keys-sha256"
	// hostVolumePrefix names the hostPath volumes added for configured
	// paths outside the data and state directories.
	hostVolumePrefix = "host-"
	// bucketVolumePrefix names the Secret volume of a bucket source.
	bucketVolumePrefix = "bucket-"
)

// Settings are what install changes in the embedded manifests.
type Settings struct {
	Namespace string
	Image     string
	// DataDir is k3s's --data-dir on the nodes; StateDir the agent's.
	DataDir  string
	StateDir string
	// Port is the agent's gRPC port on the node's loopback; its health and
	// metrics endpoint is Port+1.
	Port int
	// Config is the agent configuration (config.yaml) as a YAML tree.
	Config map[string]any
	// Secrets are applied before the DaemonSet.
	Secrets []*unstructured.Unstructured
	// AgentCASHA256 is the digest of the agents' CA certificate, put on
	// the pod template so that a renewed CA restarts the agents (a mounted
	// Secret changes under a running agent, which read it at start).
	// Empty: taken from Secret dr-agent-tls in Secrets.
	AgentCASHA256 string
}

// AgentCAAnnotation on the agent pods is AgentCASHA256.
const AgentCAAnnotation = "dr.kubectl.io/agent-ca-sha256"

// agentCASHA256 is s.AgentCASHA256, or the digest of the CA in the agent
// TLS Secret among s.Secrets.
func (s Settings) agentCASHA256() string {
	if s.AgentCASHA256 != "" {
		return s.AgentCASHA256
	}
	for _, sec := range s.Secrets {
		if sec.GetName() != AgentTLSSecret {
			continue
		}
		enc, _, _ := unstructured.NestedString(sec.Object, "data", "ca.crt")
		caPEM, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(caPEM) == 0 {
			return ""
		}
		sum := sha256.Sum256(caPEM)
		return hex.EncodeToString(sum[:])
	}
	return ""
}

// Kustomization is the part of manifests/kustomization.yaml install reads.
type kustomization struct {
	Resources []string `json:"resources"`
	Labels    []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

// Embedded returns the objects of manifests/ in kustomization order, with
// the kustomization's labels, and the agent config of its ConfigMap.
func Embedded() ([]*unstructured.Unstructured, error) {
	data, err := fs.ReadFile(manifests.FS, "kustomization.yaml")
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("manifests/kustomization.yaml: %w", err)
	}
	var objs []*unstructured.Unstructured
	for _, name := range k.Resources {
		data, err := fs.ReadFile(manifests.FS, name)
		if err != nil {
			return nil, fmt.Errorf("manifests/%s: %w", name, err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("manifests/%s: %w", name, err)
			}
			if m == nil {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			labels := u.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			for _, l := range k.Labels {
				for key, v := range l.Pairs {
					labels[key] = v
				}
			}
			u.SetLabels(labels)
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// EmbeddedConfig is the agent config of the embedded ConfigMap.
func EmbeddedConfig() (map[string]any, error) {
	objs, err := Embedded()
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == ConfigMapName {
			data, _, _ := unstructured.NestedString(o.Object, "data", ConfigKey)
			return ParseConfig(data)
		}
	}
	return nil, errors.New("manifests/ has no ConfigMap " + ConfigMapName)
}

// ParseConfig reads an agent config into a YAML tree.
func ParseConfig(data string) (map[string]any, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(data), &m); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	return m, nil
}

// MarshalConfig writes the tree as the ConfigMap's config.yaml (keys
// sorted, so the same tree always gives the same bytes) after checking it
// is a configuration the agent accepts.
func MarshalConfig(cfg map[string]any) (string, error) {
	data, _, err := marshalConfig(cfg)
	return data, err
}

func marshalConfig(cfg map[string]any) (string, *agentconfig.Config, error) {
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", nil, err
	}
	// The node name comes from the pod; any name validates the rest.
	check := append([]byte("nodeName: validate\n"), data...)
	if _, ok := cfg["nodeName"]; ok {
		check = data
	}
	parsed, err := agentconfig.Parse(check, "(the ConfigMap's config.yaml)")
	if err != nil {
		return "", nil, err
	}
	return string(data), parsed, nil
}

// Render returns every object install applies, in order: the embedded
// manifests with the namespace, image, paths and ports of s, the agent
// config of s, and s's Secrets before the DaemonSet.
func Render(s Settings) ([]*unstructured.Unstructured, error) {
	objs, err := Embedded()
	if err != nil {
		return nil, err
	}
	cfgData, parsed, err := marshalConfig(s.Config)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace":
			o.SetName(s.Namespace)
		case "ClusterRole":
		case "ClusterRoleBinding":
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, sub := range subjects {
				sub.(map[string]any)["namespace"] = s.Namespace
			}
			if err := unstructured.SetNestedSlice(o.Object, subjects, "subjects"); err != nil {
				return nil, err
			}
		default:
			o.SetNamespace(s.Namespace)
		}
		switch {
		case o.GetKind() == "ConfigMap" && o.GetName() == ConfigMapName:
			if err := unstructured.SetNestedField(o.Object, cfgData, "data", ConfigKey); err != nil {
				return nil, err
			}
		case o.GetKind() == "DaemonSet" && o.GetName() == DaemonSetName:
			if err := renderDaemonSet(o, s, parsed.HostKeysSHA256()); err != nil {
				return nil, fmt.Errorf("render DaemonSet: %w", err)
			}
			for _, sec := range s.Secrets {
				sec.SetNamespace(s.Namespace)
				out = append(out, sec)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

func renderDaemonSet(ds *unstructured.Unstructured, s Settings, hostKeys string) error {
	spec, _, err := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	if err != nil {
		return err
	}
	containers, _ := spec["containers"].([]any)
	if len(containers) != 1 {
		return fmt.Errorf("want one container, manifests/ has %d", len(containers))
	}
	c := containers[0].(map[string]any)
	c["image"] = s.Image
	// The digest of the host keys goes into the pod spec, which only who
	// is root on the nodes already (who can change the image) may edit:
	// an agent refuses a ConfigMap whose host keys differ from it.
	args, _ := c["args"].([]any)
	var keptArgs []any
	for i := 0; i < len(args); i++ {
		if a, _ := args[i].(string); a == hostKeysFlag {
			i++
			continue
		}
		keptArgs = append(keptArgs, args[i])
	}
	c["args"] = append(keptArgs, hostKeysFlag, hostKeys)
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if p, ok := c[probe].(map[string]any); ok {
			if h, ok := p["httpGet"].(map[string]any); ok {
				h["port"] = int64(s.Port + 1)
			}
		}
	}
	// The k3s data dir and the state dir sit at the same path in the
	// container as on the node: the config's paths mean the same in both.
	hostPaths := map[string]string{"k3s": s.DataDir, "state": s.StateDir}
	volumes, _ := spec["volumes"].([]any)
	var keptVolumes []any
	for _, v := range volumes {
		vm := v.(map[string]any)
		name, _ := vm["name"].(string)
		if strings.HasPrefix(name, hostVolumePrefix) {
			continue
		}
		if p, ok := hostPaths[name]; ok {
			vm["hostPath"].(map[string]any)["path"] = p
		}
		keptVolumes = append(keptVolumes, vm)
	}
	mounts, _ := c["volumeMounts"].([]any)
	var keptMounts []any
	for _, m := range mounts {
		mm := m.(map[string]any)
		name, _ := mm["name"].(string)
		if strings.HasPrefix(name, hostVolumePrefix) {
			continue
		}
		if p, ok := hostPaths[name]; ok {
			mm["mountPath"] = p
		}
		keptMounts = append(keptMounts, mm)
	}
	for i, p := range HostMounts(s.Config, s.DataDir, s.StateDir) {
		name := hostVolumePrefix + strconv.Itoa(i)
		keptVolumes = append(keptVolumes, map[string]any{
			"name":     name,
			"hostPath": map[string]any{"path": p, "type": "DirectoryOrCreate"},
		})
		keptMounts = append(keptMounts, map[string]any{"name": name, "mountPath": p})
	}
	for _, name := range bucketSecretMounts(s.Config) {
		vol := bucketVolume(name)
		keptVolumes = append(keptVolumes, map[string]any{
			"name":   vol,
			"secret": map[string]any{"secretName": BucketSecretPrefix + name, "defaultMode": int64(0o400)},
		})
		keptMounts = append(keptMounts, map[string]any{"name": vol, "mountPath": bucketMount + "/" + name, "readOnly": true})
	}
	c["volumeMounts"] = keptMounts
	spec["volumes"] = keptVolumes
	spec["containers"] = []any{c}
	if err := unstructured.SetNestedMap(ds.Object, spec, "spec", "template", "spec"); err != nil {
		return err
	}
	if sum := s.agentCASHA256(); sum != "" {
		if err := unstructured.SetNestedField(ds.Object, sum, "spec", "template", "metadata", "annotations", AgentCAAnnotation); err != nil {
			return err
		}
	}
	return unstructured.SetNestedField(ds.Object, strconv.Itoa(s.Port), "spec", "template", "metadata", "annotations", "dr.kubectl.io/grpc-port")
}

// HostMounts are the node directories the agent's container needs besides
// the data and state directories: the configured backup paths (a glob's
// directory part), WAL spools and PostgreSQL data directories, and a
// file:// store. Nested paths collapse into their parent.
func HostMounts(cfg map[string]any, dataDir, stateDir string) []string {
	var paths []string
	add := func(p string) {
		if p == "" || !filepath.IsAbs(p) {
			return
		}
		// The directory part before any glob character.
		if i := strings.IndexAny(p, "*?["); i >= 0 {
			p = filepath.Dir(p[:i+1])
		}
		paths = append(paths, filepath.Clean(p))
	}
	strs := func(v any) {
		list, _ := v.([]any)
		for _, x := range list {
			if s, ok := x.(string); ok {
				add(s)
			}
		}
	}
	if restic, ok := cfg["restic"].(map[string]any); ok {
		strs(restic["paths"])
		if nodes, ok := restic["nodes"].(map[string]any); ok {
			for _, n := range nodes {
				if ps, ok := n.(map[string]any); ok {
					strs(ps["paths"])
				}
			}
		}
	}
	if wal, ok := cfg["wal"].(map[string]any); ok {
		sources, _ := wal["sources"].([]any)
		for _, src := range sources {
			if m, ok := src.(map[string]any); ok {
				for _, k := range []string{"spool", "pgdata"} {
					if s, ok := m[k].(string); ok {
						add(s)
					}
				}
			}
		}
	}
	if store, ok := cfg["store"].(map[string]any); ok {
		if u, ok := store["url"].(string); ok && strings.HasPrefix(u, "file://") {
			add(strings.TrimPrefix(u, "file://"))
		}
	}
	slices.Sort(paths)
	var out []string
	for _, p := range paths {
		if within(p, dataDir) || within(p, stateDir) || (len(out) > 0 && within(p, out[len(out)-1])) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
