package install

import (
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// Install keeps its CA, key included, in a Secret the DaemonSet never
// mounts; a re-run keeps it; an install from before (no CA key kept)
// gets a new CA, and the agents' pods are restarted for it.
func TestInstallKeepsTheCAWhereNoNodeReadsIt(t *testing.T) {
	render := func(ex *existingState) ([]byte, map[string]bool, string) {
		t.Helper()
		o := &Options{DataDir: "/data/k3s", StateDir: "/data/dr-agent", Port: 7000}
		secrets, _, err := o.secrets(ex, map[string][]byte{"url": []byte("s3://b/p")})
		if err != nil {
			t.Fatal(err)
		}
		tree, err := EmbeddedConfig()
		if err != nil {
			t.Fatal(err)
		}
		o.store.URL = "s3://b/p"
		o.configure(tree, "uid-1", nil)
		objs, err := Render(Settings{Namespace: "dr-system", Image: "img", DataDir: o.DataDir, StateDir: o.StateDir, Port: o.Port, Config: tree, Secrets: secrets})
		if err != nil {
			t.Fatal(err)
		}
		ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", DaemonSetName)
		mounted := map[string]bool{}
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				mounted[v.Secret.SecretName] = true
			}
		}
		caCert := secretValue(t, objs, agentclient.AgentCASecret, "ca.crt")
		caKey := secretValue(t, objs, agentclient.AgentCASecret, "ca.key")
		if _, err := pki.ParseCA([]byte(caCert), []byte(caKey)); err != nil {
			t.Fatalf("Secret %s: %v", agentclient.AgentCASecret, err)
		}
		if got := secretValue(t, objs, AgentTLSSecret, "ca.crt"); got != caCert {
			t.Errorf("Secret %s holds another CA than %s", AgentTLSSecret, agentclient.AgentCASecret)
		}
		ex.secrets = map[string]map[string][]byte{}
		for _, name := range []string{agentclient.AgentCASecret, AgentTLSSecret, cmdutil.ClientTLSSecret, cmdutil.SnapshotKeySecret, ResticSecret} {
			ex.secrets[name] = map[string][]byte{}
			for _, k := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key", mtls.RetiredCAFile, cmdutil.SnapshotKeyKey, "password"} {
				if v := secretValueOK(objs, name, k); v != "" {
					ex.secrets[name][k] = []byte(v)
				}
			}
		}
		return []byte(caCert), mounted, ds.Spec.Template.Annotations[AgentCAAnnotation]
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ex := &existingState{secrets: map[string]map[string][]byte{
		cmdutil.SnapshotKeySecret: {cmdutil.SnapshotKeyKey: []byte(id.String() + "\n")},
		ResticSecret:              {"password": []byte("pw")},
	}}
	ca1, mounted, sum1 := render(ex)
	if mounted[agentclient.AgentCASecret] || !mounted[AgentTLSSecret] {
		t.Errorf("DaemonSet mounts %v: want %s, never %s", mounted, AgentTLSSecret, agentclient.AgentCASecret)
	}
	if sum1 == "" {
		t.Error("the pod template carries no digest of the agents' CA")
	}
	ca2, _, sum2 := render(ex)
	if string(ca2) != string(ca1) || sum2 != sum1 {
		t.Error("a re-run replaced the CA")
	}
	// A node's record, signed while the first CA was install's.
	first, err := pki.ParseCA(ex.secrets[agentclient.AgentCASecret]["ca.crt"], ex.secrets[agentclient.AgentCASecret]["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	kp, err := first.Issue(pki.LeafOptions{CommonName: pki.NodeDNSName("server-1"), DNSNames: pki.NodeDNSNames("server-1"), Server: true})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	record := []byte(`{"name":"s1"}`)
	sign, err := signature.FromKeyPair(pair)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.Sign("etcd/server-1/s1.json", record, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verifies := func(secret string) error {
		d := ex.secrets[secret]
		roots, err := mtls.Files{CAPEM: d["ca.crt"], RetiredPEM: d[mtls.RetiredCAFile]}.Roots()
		if err != nil {
			return err
		}
		_, err = signature.Trust{Roots: roots, NodeOf: pki.CertNode}.Verify(env, "etcd/server-1/s1.json", record, signature.Owner{Node: "server-1"})
		return err
	}

	delete(ex.secrets, agentclient.AgentCASecret)
	ca3, _, sum3 := render(ex)
	if string(ca3) == string(ca1) || sum3 == sum1 {
		t.Error("without the CA's key, the old CA was kept (nothing could enroll the agents)")
	}
	// The renewal keeps the first CA's certificate (not its key) for the
	// records it vouched for, in the Secrets the agents and the plugin
	// read; a second renewal keeps both.
	if _, ok := ex.secrets[agentclient.AgentCASecret]["ca.key"]; !ok {
		t.Fatal("the renewed CA Secret has no key")
	}
	for _, name := range []string{AgentTLSSecret, cmdutil.ClientTLSSecret} {
		if err := verifies(name); err != nil {
			t.Errorf("a record signed under the first CA, checked with Secret %s after a renewal: %v", name, err)
		}
		if strings.Contains(string(ex.secrets[name][mtls.RetiredCAFile]), "PRIVATE KEY") {
			t.Errorf("Secret %s's %s holds a key", name, mtls.RetiredCAFile)
		}
	}
	delete(ex.secrets, agentclient.AgentCASecret)
	render(ex)
	retired := ex.secrets[AgentTLSSecret][mtls.RetiredCAFile]
	if n := strings.Count(string(retired), "BEGIN CERTIFICATE"); n != 2 || !strings.Contains(string(retired), strings.TrimSpace(string(ca3))) {
		t.Errorf("after two renewals %s holds %d certificates, want both earlier CAs:\n%s", mtls.RetiredCAFile, n, retired)
	}
	if err := verifies(AgentTLSSecret); err != nil {
		t.Errorf("a record signed under the first CA after two renewals: %v", err)
	}
	// TLS trusts only the current CA.
	if strings.Contains(string(ex.secrets[AgentTLSSecret]["ca.crt"]), strings.TrimSpace(string(ca1))) {
		t.Error("the agents' ca.crt still holds the first CA")
	}
}

// secretValueOK is the decoded value of key in Secret name, "" when absent.
func secretValueOK(objs []*unstructured.Unstructured, name, key string) string {
	for _, o := range objs {
		if o.GetKind() == "Secret" && o.GetName() == name {
			enc, _, _ := unstructured.NestedString(o.Object, "data", key)
			b, _ := base64.StdEncoding.DecodeString(enc)
			return string(b)
		}
	}
	return ""
}
