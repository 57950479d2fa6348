package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// --bucket-source puts the source into the agents' config with key files
// inside its Secret's mount, renders that Secret, and the DaemonSet mounts
// it read-only; a later render of the same config keeps the mount.
func TestBucketSourceIsMountedFromItsSecret(t *testing.T) {
	dir := t.TempDir()
	ak, sk := filepath.Join(dir, "ak"), filepath.Join(dir, "sk")
	os.WriteFile(ak, []byte("media-user\n"), 0o600)
	os.WriteFile(sk, []byte("media-secret\n"), 0o600)
	b, err := parseBucketSource("name=app-media,url=s3://app-media,endpoint=http://10.0.0.9:8333,path-style=true,interval=10s,access-key-file=" + ak + ",secret-key-file=" + sk)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.load(); err != nil {
		t.Fatal(err)
	}
	objs := render(t, func(tree map[string]any) { b.configure(tree) })

	cm := find[corev1.ConfigMap](t, objs, "ConfigMap", ConfigMapName)
	cfg, err := agentconfig.Parse([]byte("nodeName: n\n"+cm.Data[ConfigKey]), "test")
	if err != nil {
		t.Fatal(err)
	}
	src := cfg.Buckets.Sources
	if len(src) != 1 || src[0].Name != "app-media" || src[0].Bucket.AccessKeyFile != "/etc/dr-agent/buckets/app-media/accessKey" ||
		src[0].Bucket.SecretKeyFile != "/etc/dr-agent/buckets/app-media/secretKey" || !src[0].Bucket.PathStyle || src[0].Interval != "10s" {
		t.Fatalf("bucket sources in the config: %+v", src)
	}
	sec := b.secret()
	if sec.GetName() != "dr-bucket-app-media" {
		t.Errorf("secret name %s", sec.GetName())
	}
	if data, _ := sec.Object["data"].(map[string]any); data["accessKey"] != "bWVkaWEtdXNlcg==" {
		t.Errorf("secret data %v, want the trimmed access key", data)
	}

	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "dr-agent")
	var vol *corev1.Volume
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "dr-bucket-app-media" {
			vol = &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	if vol == nil {
		t.Fatalf("no volume of Secret dr-bucket-app-media: %+v", ds.Spec.Template.Spec.Volumes)
	}
	mounted := false
	for _, m := range ds.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.Name == vol.Name {
			mounted = m.MountPath == "/etc/dr-agent/buckets/app-media" && m.ReadOnly
		}
	}
	if !mounted {
		t.Errorf("volume %s not mounted read-only at /etc/dr-agent/buckets/app-media", vol.Name)
	}

	// A source configured another way (key files on the node) gets no
	// Secret mount.
	objs = render(t, func(tree map[string]any) {
		tree["buckets"] = map[string]any{"sources": []any{map[string]any{"name": "other", "bucket": map[string]any{"url": "s3://o", "accessKeyFile": "/srv/o/ak", "secretKeyFile": "/srv/o/sk"}}}}
	})
	ds = find[appsv1.DaemonSet](t, objs, "DaemonSet", "dr-agent")
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Secret != nil && strings.HasPrefix(v.Secret.SecretName, BucketSecretPrefix) {
			t.Errorf("a Secret volume for a source with its own key files: %+v", v)
		}
	}
}

func TestBucketSourceSpecRefusals(t *testing.T) {
	for spec, want := range map[string]string{
		"url=s3://m":                              "name=NAME is required",
		"name=m":                                  "url=s3://BUCKET is required",
		"name=m,url=file:///x":                    "want s3://BUCKET",
		"name=M_1,url=s3://m":                     "name",
		"name=m,url=s3://m,access-key-file=/a":    "give access-key-file and secret-key-file together",
		"name=m,url=s3://m,colour=blue":           `unknown key "colour"`,
		"name=m,url=s3://m,name=n":                "name given twice",
		"name=m,url=s3://m,retention-days=ninety": "retention-days=ninety",
		"name=m,url=s3://m,path-style":            `"path-style" is not KEY=VALUE`,
	} {
		_, err := parseBucketSource(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", spec, err, want)
		}
	}
	b, err := parseBucketSource("name=m,url=s3://m,access-key-file=/nonexistent/ak,secret-key-file=/nonexistent/sk")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.load(); err == nil || !strings.Contains(err.Error(), "read the access key") {
		t.Errorf("missing key file: %v", err)
	}
}
