package registry

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsv1beta1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	"k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
)

func TestParseKey(t *testing.T) {
	for key, want := range map[string]Ref{
		"/registry/configmaps/team-a/settings":                                         {Resource: "configmaps", Namespace: "team-a", Name: "settings"},
		"/registry/namespaces/team-a":                                                  {Resource: "namespaces", Name: "team-a"},
		"/registry/deployments/default/web":                                            {Group: "apps", Resource: "deployments", Namespace: "default", Name: "web"},
		"/registry/services/specs/default/kubernetes":                                  {Resource: "services", Namespace: "default", Name: "kubernetes"},
		"/registry/services/endpoints/default/kubernetes":                              {Resource: "endpoints", Namespace: "default", Name: "kubernetes"},
		"/registry/minions/server-1":                                                   {Resource: "nodes", Name: "server-1"},
		"/registry/controllers/default/rc":                                             {Resource: "replicationcontrollers", Namespace: "default", Name: "rc"},
		"/registry/ingress/default/web":                                                {Group: "networking.k8s.io", Resource: "ingresses", Namespace: "default", Name: "web"},
		"/registry/rolebindings/team-a/readers":                                        {Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: "team-a", Name: "readers"},
		"/registry/clusterroles/admin":                                                 {Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "admin"},
		"/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com": {Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Name: "widgets.example.com"},
		"/registry/example.com/widgets/team-a/w1":                                      {Group: "example.com", Resource: "widgets", Namespace: "team-a", Name: "w1"},
		"/registry/example.com/clusterwidgets/cw":                                      {Group: "example.com", Resource: "clusterwidgets", Name: "cw"},
		"/registry/apiregistration.k8s.io/apiservices/v1.apps":                         {Group: "apiregistration.k8s.io", Resource: "apiservices", Name: "v1.apps"},
	} {
		got, ok := ParseKey(key)
		if !ok || got != want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", key, got, ok, want)
		}
	}
	for _, key := range []string{"/registry/ranges/serviceips", "/registry/masterleases/127.0.0.1", "/bootstrap/abc", "/registry/", "/registry/configmaps", "/registry/services/specs", "/registry/example.com/widgets", "/registry/a/b/c/d", "/registry/configmaps//x"} {
		if ref, ok := ParseKey(key); ok {
			t.Errorf("ParseKey(%q) = %+v, want no object", key, ref)
		}
	}
}

// stored encodes obj the way kube-apiserver's storage does: protobuf.
func stored(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	d := NewDecoder()
	var buf bytes.Buffer
	enc := serializer.NewCodecFactory(d.scheme).EncoderForVersion(protobuf.NewSerializer(d.scheme, d.scheme), obj.GetObjectKind().GroupVersionKind().GroupVersion())
	if err := enc.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), protobufMagic) {
		t.Fatalf("encoded without the protobuf magic: %q", buf.Bytes()[:8])
	}
	return buf.Bytes()
}

func TestDecodeBuiltinProtobuf(t *testing.T) {
	replicas := int32(2)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	obj, err := NewDecoder().Decode("/registry/deployments/team-a/web", stored(t, dep))
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetAPIVersion() != "apps/v1" || obj.GetKind() != "Deployment" || obj.GetName() != "web" || obj.GetNamespace() != "team-a" || obj.GetLabels()["app"] != "web" {
		t.Errorf("decoded %s %s %s/%s labels %v", obj.GetAPIVersion(), obj.GetKind(), obj.GetNamespace(), obj.GetName(), obj.GetLabels())
	}
	image, _, _ := unstructuredString(obj.Object, "spec", "template", "spec", "containers")
	if !strings.Contains(image, "nginx:1.27") {
		t.Errorf("containers %s", image)
	}
}

func unstructuredString(m map[string]any, path ...string) (string, bool, error) {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return "", false, nil
		}
		v = mm[p]
	}
	return strings.TrimSpace(strings.ReplaceAll(cmp.Diff(nil, v), "\n", "")), true, nil
}

func TestDecodeCustomResourceJSON(t *testing.T) {
	obj, err := NewDecoder().Decode("/registry/example.com/widgets/team-a/w1", []byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"team-a"},"spec":{"size":3}}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetKind() != "Widget" || obj.Object["spec"].(map[string]any)["size"] != float64(3) {
		t.Errorf("decoded %v", obj.Object)
	}
	if _, err := NewDecoder().Decode("/registry/example.com/widgets/team-a/w2", []byte(`{"spec":{}}`)); err == nil {
		t.Error("JSON without apiVersion and kind decoded")
	}
}

// kube-apiserver keeps CRDs as apiextensions.k8s.io/v1beta1 JSON; only v1
// can be applied.
func TestDecodeCRDStoredAsV1beta1(t *testing.T) {
	d := NewDecoder()
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}},
			}},
		},
	}
	// The API server holds the internal version and stores it through
	// apiextensions' LegacyCodec(v1beta1, v1).
	internal := &apiextensions.CustomResourceDefinition{}
	if err := d.scheme.Convert(crd, internal, nil); err != nil {
		t.Fatal(err)
	}
	data, err := runtime.Encode(serializer.NewCodecFactory(d.scheme).LegacyCodec(apiextensionsv1beta1.SchemeGroupVersion, apiextensionsv1.SchemeGroupVersion), internal)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"apiextensions.k8s.io/v1beta1"`)) {
		t.Fatalf("not stored as v1beta1: %s", data)
	}
	obj, err := d.Decode("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com", data)
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetAPIVersion() != "apiextensions.k8s.io/v1" {
		t.Errorf("CRD decoded as %s, want apiextensions.k8s.io/v1", obj.GetAPIVersion())
	}
	versions := obj.Object["spec"].(map[string]any)["versions"].([]any)
	if len(versions) != 1 || versions[0].(map[string]any)["schema"] == nil {
		t.Errorf("versions %v, want v1 with its schema", versions)
	}
}

func ptr[T any](v T) *T { return &v }

// Values wrapped by kube-apiserver's own transformers (k8s.io/apiserver)
// come back with the keys of the EncryptionConfiguration k3s writes.
func TestDecryptWhatTheAPIServerEncrypted(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString(key)
	cfg := []byte(`{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[
		{"aescbc":{"keys":[{"name":"aescbckey","secret":"` + b64 + `"}]}},
		{"aesgcm":{"keys":[{"name":"gcmkey","secret":"` + b64 + `"}]}},
		{"secretbox":{"keys":[{"name":"boxkey","secret":"` + b64 + `"}]}},
		{"identity":{}}]}]}`)
	enc, err := ParseEncryption(cfg)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := aestransformer.NewGCMTransformer(block)
	if err != nil {
		t.Fatal(err)
	}
	var box [32]byte
	copy(box[:], key)
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team-a"},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	const etcdKey = "/registry/secrets/team-a/db"
	plain := stored(t, secret)
	for _, c := range []struct {
		prefix string
		tr     value.Transformer
	}{
		{"k8s:enc:aescbc:v1:aescbckey:", aestransformer.NewCBCTransformer(block)},
		{"k8s:enc:aesgcm:v1:gcmkey:", gcm},
		{"k8s:enc:secretbox:v1:boxkey:", secretbox.NewSecretboxTransformer(box)},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			ct, err := c.tr.TransformToStorage(context.Background(), plain, value.DefaultContext(etcdKey))
			if err != nil {
				t.Fatal(err)
			}
			stored := append([]byte(c.prefix), ct...)
			d := NewDecoder()
			d.Encryption = enc
			obj, err := d.Decode(etcdKey, stored)
			if err != nil {
				t.Fatal(err)
			}
			if got := obj.Object["data"].(map[string]any)["password"]; got != base64.StdEncoding.EncodeToString([]byte("hunter2")) {
				t.Errorf("password %v", got)
			}
			// Without the config: a clear error, never garbage.
			_, err = NewDecoder().Decode(etcdKey, stored)
			if !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), "no encryption config") {
				t.Errorf("without keys: %v", err)
			}
		})
	}
	// A key the config does not hold (rotated away).
	d := NewDecoder()
	d.Encryption = enc
	ct, _ := aestransformer.NewCBCTransformer(block).TransformToStorage(context.Background(), plain, value.DefaultContext(etcdKey))
	_, err = d.Decode(etcdKey, append([]byte("k8s:enc:aescbc:v1:oldkey:"), ct...))
	if !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), `"oldkey"`) {
		t.Errorf("unknown key: %v", err)
	}
	// identity: stored in the clear.
	if _, err := d.Decode(etcdKey, plain); err != nil {
		t.Errorf("identity: %v", err)
	}
}
