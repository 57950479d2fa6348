package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// protobufMagic starts a value in Kubernetes' protobuf encoding.
var protobufMagic = []byte("k8s\x00")

// ErrUnknownType means a value is in the protobuf encoding of a type this
// build does not know (an aggregated API's, or one newer than client-go).
var ErrUnknownType = errors.New("stored as protobuf of a type kubectl dr does not know")

// Decoder turns stored values into objects.
type Decoder struct {
	// Encryption undoes encryption at rest; nil when the cluster has none
	// (encrypted values then fail with ErrEncrypted).
	Encryption *Encryption

	scheme *runtime.Scheme
	pb     *protobuf.Serializer
	crd    runtime.Decoder
}

// NewDecoder knows client-go's built-in types and CRDs.
func NewDecoder() *Decoder {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // a build whose scheme does not register is broken
	}
	apiextensionsinstall.Install(s)
	return &Decoder{
		scheme: s,
		pb:     protobuf.NewSerializer(s, s),
		// kube-apiserver stores CRDs as apiextensions.k8s.io/v1beta1 JSON;
		// only v1 is served.
		crd: serializer.NewCodecFactory(s).UniversalDecoder(),
	}
}

// Decode returns the object stored under etcdKey: decrypted, then
// protobuf (built-in types) or JSON (custom resources, CRDs).
func (d *Decoder) Decode(etcdKey string, value []byte) (*unstructured.Unstructured, error) {
	value, err := d.Encryption.Decrypt(etcdKey, value)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(value, protobufMagic) {
		return d.decodeProtobuf(value)
	}
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(value, &obj.Object); err != nil {
		return nil, fmt.Errorf("decode %s: neither Kubernetes protobuf nor JSON: %w", etcdKey, err)
	}
	if obj.GetKind() == "" || obj.GetAPIVersion() == "" {
		return nil, fmt.Errorf("decode %s: JSON without apiVersion and kind", etcdKey)
	}
	if obj.GetKind() == "CustomResourceDefinition" && obj.GroupVersionKind().Group == apiextensionsv1.GroupName && obj.GetAPIVersion() != apiextensionsv1.SchemeGroupVersion.String() {
		// Through the internal version: there is no direct conversion.
		internal, _, err := d.crd.Decode(value, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", etcdKey, err)
		}
		v1 := &apiextensionsv1.CustomResourceDefinition{}
		if err := d.scheme.Convert(internal, v1, nil); err != nil {
			return nil, fmt.Errorf("convert %s to apiextensions.k8s.io/v1: %w", etcdKey, err)
		}
		v1.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		return d.toUnstructured(v1)
	}
	return obj, nil
}

func (d *Decoder) decodeProtobuf(value []byte) (*unstructured.Unstructured, error) {
	typed, gvk, err := d.pb.Decode(value, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) {
			return nil, fmt.Errorf("%w: %v", ErrUnknownType, err)
		}
		return nil, fmt.Errorf("decode protobuf: %w", err)
	}
	typed.GetObjectKind().SetGroupVersionKind(*gvk)
	return d.toUnstructured(typed)
}

func (d *Decoder) toUnstructured(typed runtime.Object) (*unstructured.Unstructured, error) {
	gvks, _, err := d.scheme.ObjectKinds(typed)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", gvks[0].Kind, err)
	}
	obj := &unstructured.Unstructured{Object: m}
	if gvk := typed.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		obj.SetGroupVersionKind(gvk)
	} else {
		obj.SetGroupVersionKind(gvks[0])
	}
	return obj, nil
}
