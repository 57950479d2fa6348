package install

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Uninstall removes the bucket sources' credentials install stored, and
// no Secret install did not make.
func TestUninstallRemovesTheBucketSourcesSecrets(t *testing.T) {
	labelled := map[string]string{PartOfLabel: PartOfValue}
	got := bucketSecretNames([]corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: BucketSecretPrefix + "app-media", Labels: labelled}},
		{ObjectMeta: metav1.ObjectMeta{Name: BucketSecretPrefix + "someone-elses"}},
		{ObjectMeta: metav1.ObjectMeta{Name: ResticSecret, Labels: labelled}},
	})
	if want := []string{BucketSecretPrefix + "app-media"}; !slices.Equal(got, want) {
		t.Fatalf("bucket Secrets to remove: %q, want %q", got, want)
	}
}
