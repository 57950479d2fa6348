package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
	"github.com/kubectl-dr/kubectl-dr/test/lab"
)

// appState is a bucket's content: key -> sha256 of the bytes.
type appState map[string]string

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// readBucket is a bucket's content as SeaweedFS gives it back through
// minio-go (not our S3 code).
func readBucket(t *testing.T, mc *minio.Client, bucket string) appState {
	t.Helper()
	ctx := context.Background()
	out := appState{}
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s: %v", bucket, o.Err)
		}
		obj, err := mc.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			t.Fatalf("read %s/%q: %v", bucket, o.Key, err)
		}
		out[o.Key] = sum(data)
	}
	return out
}

func diffStates(got, want appState) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("missing %q", k))
		} else if g != v {
			d = append(d, fmt.Sprintf("other bytes under %q", k))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("extra %q", k))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// afterSecond waits until the clock is past t's second: S3 keeps
// modification times to the second, so a change made then is after t.
func afterSecond(t time.Time) {
	for time.Now().Truncate(time.Second).Compare(t.Truncate(time.Second)) <= 0 {
		time.Sleep(50 * time.Millisecond)
	}
}

// Objects written, overwritten and deleted in app-media (SeaweedFS) over
// three passes; the bucket restored --to each of the three times into a
// scratch bucket equals the bucket as it was then (every key, every byte).
// Then a mass delete: the restore into app-media itself previews exactly
// the objects it will write (and the one it will delete), saves that one
// aside, and brings everything back.
func TestBucketPointInTimeRestore(t *testing.T) {
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := appState{}
	put := func(key string, data []byte) {
		t.Helper()
		if _, err := mc.PutObject(ctx, lab.AppBucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		want[key] = sum(data)
	}
	del := func(key string) {
		t.Helper()
		if err := mc.RemoveObject(ctx, lab.AppBucket, key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		delete(want, key)
	}
	backup := func() time.Time {
		t.Helper()
		r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource, "-o", "json")
		if r.code != 0 {
			t.Fatalf("bucket backup: exit %d\n%s", r.code, r.stderr)
		}
		var p printers.BucketPass
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("bucket backup -o json: %v\n%s", err, r.stdout)
		}
		return time.Now()
	}
	copyState := func() appState {
		c := appState{}
		for k, v := range want {
			c[k] = v
		}
		return c
	}
	// Clean slate: this test owns app-media.
	for k := range readBucket(t, mc, lab.AppBucket) {
		del(k)
	}

	long := strings.Repeat(strings.Repeat("k", 200)+"/", 4) + "end.bin"
	odd := []string{"docs/a b.txt", "ü/日本 é.txt", "..a/b..c", long, "media/big.bin"}
	for i, k := range odd {
		size := 100 + i
		if k == "media/big.bin" {
			size = 20 << 20 // above the part size: multipart on the way back
		}
		put(k, bytes.Repeat([]byte{byte('a' + i)}, size))
	}
	for i := range 30 {
		put(fmt.Sprintf("photos/%03d.jpg", i), []byte(fmt.Sprintf("photo %d v1", i)))
	}
	put("copy/same-as-photo-1.jpg", []byte("photo 1 v1"))
	t1 := backup()
	s1 := copyState()

	afterSecond(t1)
	for i := range 10 {
		put(fmt.Sprintf("photos/%03d.jpg", i), []byte(fmt.Sprintf("photo %d v2", i)))
	}
	for i := 20; i < 30; i++ {
		del(fmt.Sprintf("photos/%03d.jpg", i))
	}
	del("docs/a b.txt")
	t2 := backup()
	s2 := copyState()

	afterSecond(t2)
	put("docs/a b.txt", []byte("back, with other bytes"))
	put("photos/025.jpg", []byte("photo 25 v1")) // the same bytes as before its deletion
	del("ü/日本 é.txt")
	t3 := backup()
	s3 := copyState()

	r := kubectlDR(t, nil, "bucket", "versions", lab.AppBucketSource, "docs/a b.txt", "-o", "json")
	var vl printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vl) != nil {
		t.Fatalf("bucket versions: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if len(vl.Items) != 3 || vl.Items[0].Deleted || !vl.Items[1].Deleted || vl.Items[2].Deleted {
		t.Fatalf("versions of \"docs/a b.txt\": %+v", vl.Items)
	}
	r = kubectlDR(t, nil, "bucket", "ls", lab.AppBucketSource, "--at", t1.UTC().Format(time.RFC3339Nano), "--prefix", "photos/", "-o", "json")
	var ls printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls.Items) != 30 {
		t.Fatalf("bucket ls --at t1 --prefix photos/: exit %d, %d items\n%s", r.code, len(ls.Items), r.stderr)
	}

	for i, c := range []struct {
		at    time.Time
		state appState
	}{{t1, s1}, {t2, s2}, {t3, s3}} {
		scratch := fmt.Sprintf("scratch-%d-%d", i+1, time.Now().UnixNano())
		if err := mc.MakeBucket(ctx, scratch, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
		r := kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--to", c.at.UTC().Format(time.RFC3339Nano),
			"--target-bucket", scratch, "--yes", "-o", "json")
		if r.code != 0 {
			t.Fatalf("restore --to t%d into %s: exit %d\n%s", i+1, scratch, r.code, r.stderr)
		}
		got := readBucket(t, mc, scratch)
		if d := diffStates(got, c.state); d != "" || len(got) != len(c.state) {
			t.Fatalf("restore --to t%d: %d objects, want %d: %s", i+1, len(got), len(c.state), d)
		}
	}

	// Mass delete, recorded by a pass; one stray object written after.
	for k := range copyState() {
		del(k)
	}
	backup()
	put("stray.txt", []byte("written after the mass delete"))
	to := t3.UTC().Format(time.RFC3339Nano)
	r = kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--to", to, "--dry-run", "-o", "json")
	var plan printers.BucketRestore
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &plan) != nil {
		t.Fatalf("restore --dry-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if plan.Create != len(s3) || plan.Overwrite != 0 || plan.Delete != 1 || plan.Done {
		t.Fatalf("dry-run plan: %d create, %d overwrite, %d delete (done %v), want %d, 0, 1", plan.Create, plan.Overwrite, plan.Delete, plan.Done, len(s3))
	}
	previewed := appState{}
	for _, ch := range plan.Changes {
		previewed[ch.Key] = ch.Action
	}
	for k := range s3 {
		if previewed[k] != "create" {
			t.Errorf("the preview does not create %q (%q)", k, previewed[k])
		}
	}
	if previewed["stray.txt"] != "delete" {
		t.Errorf("the preview does not delete stray.txt: %v", previewed)
	}
	if got := readBucket(t, mc, lab.AppBucket); len(got) != 1 {
		t.Fatalf("the dry run wrote: %d objects in app-media", len(got))
	}

	r = kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--to", to, "--yes", "-o", "json")
	if r.code != 0 {
		t.Fatalf("restore into app-media: exit %d\n%s", r.code, r.stderr)
	}
	var done printers.BucketRestore
	if err := json.Unmarshal([]byte(r.stdout), &done); err != nil || !done.Done || done.Create != plan.Create || done.Delete != 1 || done.SavedAside != 1 {
		t.Fatalf("restore result: %+v (%v)", done, err)
	}
	if got := readBucket(t, mc, lab.AppBucket); diffStates(got, s3) != "" {
		t.Fatalf("app-media after the restore: %s", diffStates(got, s3))
	}
	r = kubectlDR(t, nil, "bucket", "versions", lab.AppBucketSource, "stray.txt", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &vl) != nil {
		t.Fatalf("bucket versions stray.txt: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	aside := false
	for _, v := range vl.Items {
		aside = aside || (v.Aside && v.SHA256 == want["stray.txt"])
	}
	if !aside {
		t.Fatalf("stray.txt is not saved aside: %+v", vl.Items)
	}
	// A second restore finds nothing to do.
	r = kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--to", to, "--dry-run", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &plan) != nil || len(plan.Changes) != 0 || plan.Unchanged != len(s3) {
		t.Fatalf("restore again: %d changes, %d unchanged\n%s", len(plan.Changes), plan.Unchanged, r.stderr)
	}
}

// SeaweedFS stopped under the agent: bucket backup fails saying the bucket
// is unreachable, kubectl dr status names the failure on the bucket's row,
// and once it is back the next pass records what changed meanwhile.
func TestBucketSourceUnreachable(t *testing.T) {
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := fmt.Sprintf("unreachable/%d.txt", time.Now().UnixNano())
	if _, err := mc.PutObject(ctx, lab.AppBucket, key, strings.NewReader("before the outage"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := theLab.StopProcess("seaweedfs"); err != nil {
		t.Fatal(err)
	}
	started := false
	t.Cleanup(func() {
		if !started {
			theLab.StartSeaweedFS(context.Background())
		}
	})
	r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource)
	if r.code != 1 || !strings.Contains(r.stderr, "unreachable") {
		t.Fatalf("bucket backup with SeaweedFS down: exit %d\n%s", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "status", "-o", "json")
	var st printers.AgentStatusList
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	var row *printers.LayerStatus
	for i, l := range st.Layers {
		if l.Layer == "buckets" && l.Name == lab.AppBucketSource {
			row = &st.Layers[i]
		}
	}
	if row == nil || !strings.Contains(row.LastFailureReason, "unreachable") {
		t.Fatalf("status has no bucket row naming the failure: %+v", row)
	}
	if err := theLab.StartSeaweedFS(ctx); err != nil {
		t.Fatal(err)
	}
	started = true
	r = kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource)
	if r.code != 0 {
		t.Fatalf("bucket backup after the outage: exit %d\n%s", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "bucket", "ls", lab.AppBucketSource, "--prefix", key, "-o", "json")
	var ls printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls.Items) != 1 {
		t.Fatalf("bucket ls after the outage: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// backup create runs a pass of the bucket source with the set's other
// parts and records it; bucket restore --backup puts the bucket back as
// that pass saw it, whatever changed after.
func TestBackupSetIncludesTheBucketPass(t *testing.T) {
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stamp := time.Now().UnixNano()
	kept := fmt.Sprintf("set/%d-kept.txt", stamp)
	if _, err := mc.PutObject(ctx, lab.AppBucket, kept, strings.NewReader("in the set"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	atSet := readBucket(t, mc, lab.AppBucket)
	name := fmt.Sprintf("bucket-set-%d", stamp)
	r := kubectlDR(t, nil, "backup", "create", name, "--files=false", "-o", "json")
	if r.code != 0 {
		t.Fatalf("backup create: exit %d\n%s", r.code, r.stderr)
	}
	var set printers.BackupSet
	if err := json.Unmarshal([]byte(r.stdout), &set); err != nil {
		t.Fatalf("backup create -o json: %v\n%s", err, r.stdout)
	}
	if len(set.Buckets) != 1 || set.Buckets[0].Source != lab.AppBucketSource || set.Buckets[0].Error != "" || set.Buckets[0].Pass.IsZero() {
		t.Fatalf("the set's bucket parts: %+v", set.Buckets)
	}
	r = kubectlDR(t, nil, "backup", "describe", name)
	if r.code != 0 || !strings.Contains(r.stdout, "Buckets:\n  "+lab.AppBucketSource+" on ") {
		t.Fatalf("backup describe: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	afterSecond(set.Buckets[0].Pass)
	if err := mc.RemoveObject(ctx, lab.AppBucket, kept, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, lab.AppBucket, fmt.Sprintf("set/%d-later.txt", stamp), strings.NewReader("after the set"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource); r.code != 0 {
		t.Fatalf("bucket backup: exit %d\n%s", r.code, r.stderr)
	}
	scratch := fmt.Sprintf("scratch-set-%d", stamp)
	if err := mc.MakeBucket(ctx, scratch, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	r = kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--backup", name, "--target-bucket", scratch, "--yes")
	if r.code != 0 {
		t.Fatalf("bucket restore --backup %s: exit %d\n%s", name, r.code, r.stderr)
	}
	if got := readBucket(t, mc, scratch); diffStates(got, atSet) != "" {
		t.Fatalf("restore --backup %s: %s", name, diffStates(got, atSet))
	}
	r = kubectlDR(t, nil, "bucket", "restore", lab.AppBucketSource, "--backup", name, "--to", "now", "--dry-run")
	if r.code != 2 || !strings.Contains(r.stderr, "give one") {
		t.Fatalf("--backup with --to: exit %d\n%s", r.code, r.stderr)
	}
}

// The real node's agent reads the bucket source's credentials from the
// Secret install made of them (--bucket-source), not from files on the
// node: with its etcd member leading, it runs the pass.
func TestBucketSourceCredentialsFromTheInstalledSecret(t *testing.T) {
	node := theLab.State.KubeNode
	out := runKubectl(t, "-n", "dr-system", "get", "configmap", "dr-agent-config", "-o", "jsonpath={.data.config\\.yaml}")
	if !strings.Contains(out, "accessKeyFile: /etc/dr-agent/buckets/"+lab.AppBucketSource+"/accessKey") {
		t.Fatalf("the installed config does not read the bucket's keys from its Secret's mount:\n%s", out)
	}
	if got := runKubectl(t, "-n", "dr-system", "get", "secret", "dr-bucket-"+lab.AppBucketSource, "-o", "jsonpath={.data.accessKey}"); got == "" {
		t.Fatalf("no accessKey in Secret dr-bucket-%s", lab.AppBucketSource)
	}

	leadOn(t, node)
	ctx := context.Background()
	mc, err := theLab.AppS3Client()
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("secret-creds/%d.txt", time.Now().UnixNano())
	if _, err := mc.PutObject(ctx, lab.AppBucket, key, strings.NewReader("read with the Secret's keys"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r := kubectlDR(t, nil, "bucket", "backup", lab.AppBucketSource, "-o", "json")
	var p printers.BucketPass
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &p) != nil {
		t.Fatalf("bucket backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if p.Node != node {
		t.Fatalf("the pass ran on %s, want %s (its member leads)", p.Node, node)
	}
	r = kubectlDR(t, nil, "bucket", "ls", lab.AppBucketSource, "--prefix", key, "-o", "json")
	var ls printers.BucketObjectList
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls.Items) != 1 {
		t.Fatalf("bucket ls %s after the pass on %s: exit %d\n%s%s", key, node, r.code, r.stdout, r.stderr)
	}
}
