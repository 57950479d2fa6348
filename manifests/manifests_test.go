package manifests_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Every resource each kustomization lists decodes strictly as the API
// types: a misspelt field fails here, not at apply time. (The in-cluster
// MinIO is not run in the lab: there is no image registry here.)
func TestManifestsDecodeStrictly(t *testing.T) {
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, dir := range []string{".", "minio"} {
		data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			t.Fatal(err)
		}
		if len(k.Resources) == 0 {
			t.Fatalf("%s/kustomization.yaml lists no resources", dir)
		}
		for _, res := range k.Resources {
			data, err := os.ReadFile(filepath.Join(dir, res))
			if err != nil {
				t.Fatal(err)
			}
			r := utilyaml.NewDocumentDecoder(io.NopCloser(bytes.NewReader(data)))
			docs := 0
			for {
				buf := make([]byte, 1<<20)
				n, err := r.Read(buf)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s/%s: %v", dir, res, err)
				}
				doc := bytes.TrimSpace(buf[:n])
				if len(doc) == 0 {
					continue
				}
				if _, _, err := decoder.Decode(doc, nil, nil); err != nil {
					t.Errorf("%s/%s document %d: %v", dir, res, docs, err)
				}
				docs++
			}
			if docs == 0 {
				t.Errorf("%s/%s holds no object", dir, res)
			}
		}
	}
}
