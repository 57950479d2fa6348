package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/bucketobj"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// bucketMount is where the DaemonSet mounts bucket source NAME's Secret
// (BucketSecretPrefix+NAME): bucketMount/NAME/accessKey, secretKey, ca.crt.
const bucketMount = "/etc/dr-agent/buckets"

// BucketSecretPrefix names the Secret holding a bucket source's
// credentials: dr-bucket-NAME.
const BucketSecretPrefix = "dr-bucket-"

// bucketSource is one --bucket-source: the source's configuration and the
// credentials install keeps in its Secret.
type bucketSource struct {
	spec   string
	source agentconfig.BucketSource
	// Files named in the spec, read by load.
	accessKeyFile, secretKeyFile, caFile string
	accessKey, secretKey                 string
	ca                                   []byte
}

// bucketSpecKeys are the keys of a --bucket-source SPEC.
var bucketSpecKeys = []string{"name", "url", "endpoint", "region", "path-style", "ca-file", "access-key-file", "secret-key-file",
	"prefix", "mode", "interval", "retention-days", "concurrency", "rpo-target"}

// parseBucketSource reads name=N,url=s3://BUCKET,endpoint=URL,... .
func parseBucketSource(spec string) (*bucketSource, error) {
	b := &bucketSource{spec: spec}
	src := &b.source
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || v == "" {
			return nil, cmdutil.UsageError("--bucket-source %q: %q is not KEY=VALUE (keys: %s)", spec, kv, strings.Join(bucketSpecKeys, ", "))
		}
		if seen[k] {
			return nil, cmdutil.UsageError("--bucket-source %q: %s given twice", spec, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "name":
			src.Name = v
		case "url":
			src.Bucket.URL = v
		case "endpoint":
			src.Bucket.Endpoint = v
		case "region":
			src.Bucket.Region = v
		case "path-style":
			src.Bucket.PathStyle, err = strconv.ParseBool(v)
		case "ca-file":
			b.caFile = v
		case "access-key-file":
			b.accessKeyFile = v
		case "secret-key-file":
			b.secretKeyFile = v
		case "prefix":
			src.Prefix = v
		case "mode":
			src.Mode = v
		case "interval":
			src.Interval = v
		case "retention-days":
			src.RetentionDays, err = strconv.Atoi(v)
		case "concurrency":
			src.Concurrency, err = strconv.Atoi(v)
		case "rpo-target":
			src.RPOTarget = v
		default:
			return nil, cmdutil.UsageError("--bucket-source %q: unknown key %q (keys: %s)", spec, k, strings.Join(bucketSpecKeys, ", "))
		}
		if err != nil {
			return nil, cmdutil.UsageError("--bucket-source %q: %s=%s: %v", spec, k, v, err)
		}
	}
	switch {
	case src.Name == "":
		return nil, cmdutil.UsageError("--bucket-source %q: name=NAME is required", spec)
	case src.Bucket.URL == "":
		return nil, cmdutil.UsageError("--bucket-source %q: url=s3://BUCKET is required", spec)
	case (b.accessKeyFile == "") != (b.secretKeyFile == ""):
		return nil, cmdutil.UsageError("--bucket-source %q: give access-key-file and secret-key-file together", spec)
	}
	if err := bucketobj.ValidSource(src.Name); err != nil {
		return nil, cmdutil.UsageError("--bucket-source %q: %v", spec, err)
	}
	if !strings.HasPrefix(src.Bucket.URL, "s3://") {
		return nil, cmdutil.UsageError("--bucket-source %q: url %q: want s3://BUCKET", spec, src.Bucket.URL)
	}
	return b, nil
}

// load reads the credential files and checks the source's settings the
// way the agent will.
func (b *bucketSource) load() error {
	read := func(file, what string) ([]byte, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, cmdutil.UsageError("--bucket-source %s: read the %s: %w", b.source.Name, what, err)
		}
		return data, nil
	}
	if b.accessKeyFile != "" {
		ak, err := read(b.accessKeyFile, "access key")
		if err != nil {
			return err
		}
		sk, err := read(b.secretKeyFile, "secret key")
		if err != nil {
			return err
		}
		b.accessKey, b.secretKey = strings.TrimSpace(string(ak)), strings.TrimSpace(string(sk))
		if b.accessKey == "" || b.secretKey == "" {
			return cmdutil.UsageError("--bucket-source %s: the access key or secret key file is empty", b.source.Name)
		}
	}
	if b.caFile != "" {
		ca, err := read(b.caFile, "CA bundle")
		if err != nil {
			return err
		}
		b.ca = ca
	}
	return nil
}

// check lists one object of the bucket from here, with the credentials
// install is about to hand to the agents.
func (b *bucketSource) check(ctx context.Context) error {
	c := b.source.Bucket
	c.AccessKey, c.SecretKey, c.CAPEM = b.accessKey, b.secretKey, b.ca
	bucket, err := objstore.OpenBucket(c)
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _, err = bucket.List(cctx, b.source.Prefix, "", 1)
		cancel()
	}
	if err != nil {
		return fmt.Errorf("bucket source %s (%s): %w", b.source.Name, c.URL, err)
	}
	return nil
}

func (b *bucketSource) secret() *unstructured.Unstructured {
	data := map[string][]byte{}
	if b.accessKey != "" {
		data["accessKey"], data["secretKey"] = []byte(b.accessKey), []byte(b.secretKey)
	}
	if len(b.ca) > 0 {
		data["ca.crt"] = b.ca
	}
	return secret(BucketSecretPrefix+b.source.Name, data)
}

// configure puts the source into the config tree, replacing one of the
// same name, with its key files where the DaemonSet mounts its Secret.
func (b *bucketSource) configure(tree map[string]any) {
	src := b.source
	dir := path.Join(bucketMount, src.Name)
	bucket := map[string]any{"url": src.Bucket.URL}
	set := func(m map[string]any, k string, v any) {
		switch x := v.(type) {
		case string:
			if x == "" {
				return
			}
		case int:
			if x == 0 {
				return
			}
		case bool:
			if !x {
				return
			}
		}
		m[k] = v
	}
	set(bucket, "endpoint", src.Bucket.Endpoint)
	set(bucket, "region", src.Bucket.Region)
	set(bucket, "pathStyle", src.Bucket.PathStyle)
	if b.accessKey != "" {
		bucket["accessKeyFile"] = dir + "/accessKey"
		bucket["secretKeyFile"] = dir + "/secretKey"
	}
	if len(b.ca) > 0 {
		bucket["caFile"] = dir + "/ca.crt"
	}
	entry := map[string]any{"name": src.Name, "bucket": bucket}
	set(entry, "prefix", src.Prefix)
	set(entry, "mode", src.Mode)
	set(entry, "interval", src.Interval)
	set(entry, "retentionDays", src.RetentionDays)
	set(entry, "concurrency", src.Concurrency)
	set(entry, "rpoTarget", src.RPOTarget)

	buckets := child(tree, "buckets")
	sources, _ := buckets["sources"].([]any)
	for i, s := range sources {
		if m, ok := s.(map[string]any); ok && m["name"] == src.Name {
			sources[i] = entry
			buckets["sources"] = sources
			return
		}
	}
	buckets["sources"] = append(sources, entry)
}

// bucketVolume names the DaemonSet's volume of a bucket source's Secret;
// a volume name is a DNS label (63 characters), a source name may fill it.
func bucketVolume(source string) string {
	if len(bucketVolumePrefix)+len(source) <= 63 {
		return bucketVolumePrefix + source
	}
	sum := sha256.Sum256([]byte(source))
	return bucketVolumePrefix + hex.EncodeToString(sum[:8])
}

// bucketSecretMounts are the bucket sources of the config whose key files
// are in their Secret's mount: the DaemonSet mounts each, also on a
// re-run that does not name them.
func bucketSecretMounts(cfg map[string]any) []string {
	var names []string
	buckets, _ := cfg["buckets"].(map[string]any)
	sources, _ := buckets["sources"].([]any)
	for _, s := range sources {
		m, _ := s.(map[string]any)
		name, _ := m["name"].(string)
		bucket, _ := m["bucket"].(map[string]any)
		if name == "" || bucket == nil {
			continue
		}
		for _, k := range []string{"accessKeyFile", "caFile"} {
			if f, _ := bucket[k].(string); strings.HasPrefix(f, path.Join(bucketMount, name)+"/") {
				names = append(names, name)
				break
			}
		}
	}
	return names
}
