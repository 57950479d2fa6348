package nodecreds

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The node policy grants put and get under the store's prefix and no
// delete anywhere but restic's lock files.
func TestPolicy(t *testing.T) {
	for _, tt := range []struct{ bucket, prefix, objects, locks string }{
		{"backups", "k3s", "arn:aws:s3:::backups/k3s/*", "arn:aws:s3:::backups/k3s/*/restic/locks/*"},
		{"backups", "/a/b/", "arn:aws:s3:::backups/a/b/*", "arn:aws:s3:::backups/a/b/*/restic/locks/*"},
		{"backups", "", "arn:aws:s3:::backups/*", "arn:aws:s3:::backups/*/restic/locks/*"},
	} {
		data, err := Policy(tt.bucket, tt.prefix)
		if err != nil {
			t.Fatal(err)
		}
		var doc document
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		var puts, deletes []string
		for _, s := range doc.Statement {
			if s.Effect != "Allow" {
				t.Errorf("statement %s: effect %s", s.Sid, s.Effect)
			}
			for _, a := range s.Action {
				if strings.Contains(a, "Delete") {
					deletes = append(deletes, s.Resource...)
				}
				if a == "s3:PutObject" {
					puts = append(puts, s.Resource...)
				}
				if a == "s3:*" || a == "s3:PutBucketPolicy" || a == "s3:PutObjectRetention" || a == "s3:BypassGovernanceRetention" {
					t.Errorf("statement %s grants %s", s.Sid, a)
				}
			}
		}
		if !slices.Equal(puts, []string{tt.objects}) || !slices.Equal(deletes, []string{tt.locks}) {
			t.Errorf("%s/%s: put on %v, delete on %v; want put on %s, delete only on %s", tt.bucket, tt.prefix, puts, deletes, tt.objects, tt.locks)
		}
	}
	if _, err := Policy("", "p"); err == nil {
		t.Error("a policy for no bucket")
	}
}
