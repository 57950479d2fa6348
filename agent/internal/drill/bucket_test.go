package drill

import (
	"regexp"
	"strings"
	"testing"
)

// Scratch bucket names are valid S3 bucket names whatever the drill id,
// and tell apart the node and source that made them.
func TestScratchBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, id := range []string{"drill-20261201-120000", "Drill_Odd.ID", strings.Repeat("x", 64)} {
		n := ScratchBucketName(id, "server-1", "app-media")
		if !valid.MatchString(n) || !strings.HasPrefix(n, ScratchBucketPrefix) || strings.Contains(n, "--") {
			t.Errorf("id %q: scratch bucket %q is not a valid bucket name", id, n)
		}
	}
	if got := ScratchBucketName("drill-20261201-120000", "server-1", "app-media"); !strings.HasPrefix(got, "dr-drill-20261201-120000-") {
		t.Errorf("scratch bucket %q", got)
	}
	if ScratchBucketName("d", "server-1", "a") == ScratchBucketName("d", "server-2", "a") {
		t.Error("two nodes' scratch buckets have one name")
	}
}
