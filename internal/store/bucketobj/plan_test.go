package bucketobj

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// The plan writes only what differs: same size and md5 (or the recorded
// ETag, for multipart uploads) is the same object.
func TestMakePlan(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := []Version{
		{Key: "a", Time: at, Size: 1, MD5: "aa"},
		{Key: "b", Time: at, Size: 2, MD5: "bb"},
		{Key: "c", Time: at, Size: 3, MD5: "cc", ETag: "cc-2"},
		{Key: "d", Time: at, Size: 4, MD5: "dd"},
	}
	have := []objstore.BucketObject{
		{Key: "a", Size: 1, ETag: "aa"},
		{Key: "b", Size: 2, ETag: "xx"},
		{Key: "c", Size: 3, ETag: "cc-2"},
		{Key: "e", Size: 5, ETag: "ee"},
	}
	p := MakePlan(want, have)
	keys := func(vs []Version) (out []string) {
		for _, v := range vs {
			out = append(out, v.Key)
		}
		return out
	}
	if d := cmp.Diff([]string{"d"}, keys(p.Create)); d != "" {
		t.Errorf("create: %s", d)
	}
	if d := cmp.Diff([]string{"b"}, keys(p.Overwrite)); d != "" {
		t.Errorf("overwrite: %s", d)
	}
	if len(p.Delete) != 1 || p.Delete[0].Key != "e" || p.Same != 2 {
		t.Errorf("delete %v, same %d", p.Delete, p.Same)
	}
}
