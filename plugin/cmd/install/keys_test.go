package install

import (
	"encoding/base64"
	"strings"
	"testing"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// Re-running install over an install from before the key split keeps the
// snapshot key in Secret dr-snapshot-key (for the plugin), gives the
// agents only its recipient, drops etcd.snapshotKeyFile from their config
// and no longer mounts the private key: nothing the DaemonSet mounts holds
// an AGE-SECRET-KEY.
func TestUpgradeMovesTheAgentsToTheRecipient(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	oldKey := []byte("# created by an older install\n" + id.String() + "\n")
	ex := &existingState{secrets: map[string]map[string][]byte{
		cmdutil.SnapshotKeySecret: {cmdutil.SnapshotKeyKey: oldKey},
		ResticSecret:              {"password": []byte("pw")},
	}}
	o := &Options{DataDir: "/data/k3s", StateDir: "/data/dr-agent", Port: 7000}
	storeData := map[string][]byte{"url": []byte("s3://b/p")}
	secrets, _, err := o.secrets(ex, storeData)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := EmbeddedConfig()
	if err != nil {
		t.Fatal(err)
	}
	tree["etcd"] = map[string]any{"snapshotKeyFile": "/etc/dr-agent/snapshot-key/snapshot.key", "schedule": "0 */2 * * *"}
	o.store.URL = "s3://b/p"
	o.configure(tree, "uid-1", storeData)
	objs, err := Render(Settings{Namespace: "dr-system", Image: "img", DataDir: o.DataDir, StateDir: o.StateDir, Port: o.Port, Config: tree, Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}

	if got := secretValue(t, objs, cmdutil.SnapshotKeySecret, cmdutil.SnapshotKeyKey); got != string(oldKey) {
		t.Errorf("Secret %s after the upgrade: %q, want the old key kept", cmdutil.SnapshotKeySecret, got)
	}
	if got := secretValue(t, objs, RecipientSecret, RecipientKey); strings.TrimSpace(got) != id.Recipient().String() {
		t.Errorf("Secret %s: %q, want the key's recipient %s", RecipientSecret, got, id.Recipient())
	}

	cm := find[corev1.ConfigMap](t, objs, "ConfigMap", ConfigMapName)
	cfg, err := agentconfig.Parse([]byte("nodeName: n\n"+cm.Data[ConfigKey]), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Etcd.SnapshotKeyFile != "" || cfg.Etcd.SnapshotRecipientFile != "/etc/dr-agent/snapshot-recipient/snapshot.recipient" || cfg.Etcd.Schedule != "0 */2 * * *" {
		t.Errorf("agent config etcd %+v: want the recipient file, no key file, the user's schedule kept", cfg.Etcd)
	}

	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", DaemonSetName)
	mounted := map[string]bool{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			mounted[v.Secret.SecretName] = true
		}
	}
	if mounted[cmdutil.SnapshotKeySecret] || !mounted[RecipientSecret] {
		t.Errorf("DaemonSet mounts Secrets %v: want %s, never %s", mounted, RecipientSecret, cmdutil.SnapshotKeySecret)
	}
	for _, o := range objs {
		if o.GetKind() != "Secret" || !mounted[o.GetName()] {
			continue
		}
		for k := range find[corev1.Secret](t, objs, "Secret", o.GetName()).Data {
			if strings.Contains(secretValue(t, objs, o.GetName(), k), "AGE-SECRET-KEY") {
				t.Errorf("mounted Secret %s key %s holds a private key", o.GetName(), k)
			}
		}
	}
}

// secretValue is one decoded value of a rendered Secret.
func secretValue(t *testing.T, objs []*unstructured.Unstructured, name, key string) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Secret" && o.GetName() == name {
			enc, _, _ := unstructured.NestedString(o.Object, "data", key)
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("no Secret %s rendered", name)
	return ""
}
