package nodecreds

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ResticLocksPattern is the one place under the prefix where the node
// credentials may delete: restic removes its own lock files when a backup
// ends. Everything else (snapshots, records, WAL, restic's data) can be
// written and read, not deleted.
const ResticLocksPattern = "*/restic/locks/*"

type statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

// Policy is the IAM policy of node credentials for the store at
// s3://bucket/prefix: list the bucket and read its lock and versioning
// settings; get, put and multipart-upload objects under the prefix; delete
// nothing but restic's lock files. Overwrites stay possible (S3 has no
// put-without-overwrite permission): with versioning or Object Lock on the
// bucket the earlier version is kept.
func Policy(bucket, prefix string) ([]byte, error) {
	if bucket == "" || strings.ContainsAny(bucket, "/*") {
		return nil, fmt.Errorf("node credentials policy: bucket %q", bucket)
	}
	prefix = strings.Trim(prefix, "/")
	objects := "arn:aws:s3:::" + bucket + "/*"
	locks := "arn:aws:s3:::" + bucket + "/" + ResticLocksPattern
	if prefix != "" {
		objects = "arn:aws:s3:::" + bucket + "/" + prefix + "/*"
		locks = "arn:aws:s3:::" + bucket + "/" + prefix + "/" + ResticLocksPattern
	}
	doc := document{
		Version: "2012-10-17",
		Statement: []statement{
			{
				Sid:    "DrNodeBucket",
				Effect: "Allow",
				Action: []string{
					"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads",
					"s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning",
				},
				Resource: []string{"arn:aws:s3:::" + bucket},
			},
			{
				Sid:    "DrNodeObjects",
				Effect: "Allow",
				Action: []string{
					"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
					"s3:GetObjectRetention",
				},
				Resource: []string{objects},
			},
			{
				Sid:      "DrNodeResticLocks",
				Effect:   "Allow",
				Action:   []string{"s3:DeleteObject"},
				Resource: []string{locks},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// Creds are a pair of store credentials.
type Creds struct {
	AccessKey, SecretKey string
}
