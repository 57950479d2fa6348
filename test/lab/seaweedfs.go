package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// The application's object storage in the lab: SeaweedFS (`weed mini`:
// master, volume, filer and S3 in one process), another S3 implementation
// than the store's MinIO, with the bucket AppBucket that the bucket source
// AppBucketSource backs up.
const (
	AppBucket       = "app-media"
	AppBucketSource = "app-media"
)

// seaweedPorts are the ports weed mini listens on, each picked free.
var seaweedPorts = []string{"master", "master-grpc", "volume", "volume-grpc", "filer", "filer-grpc", "s3", "s3-grpc", "admin", "admin-grpc"}

// AppS3Endpoint is the application's S3 endpoint (http://127.0.0.1:PORT).
func (l *Lab) AppS3Endpoint() string {
	return fmt.Sprintf("http://127.0.0.1:%d", l.State.Ports["seaweedfs-s3"])
}

// AppS3Credentials are the access and secret key of the application's S3.
func (l *Lab) AppS3Credentials() (string, string) { return l.State.AppS3Key, l.State.AppS3Secret }

// AppBucketConfig reaches the application's bucket with its credentials.
func (l *Lab) AppBucketConfig(bucket string) objstore.Config {
	return objstore.Config{URL: "s3://" + bucket, Endpoint: l.AppS3Endpoint(), PathStyle: true,
		AccessKey: l.State.AppS3Key, SecretKey: l.State.AppS3Secret}
}

// AppS3Client is a minio-go client of the application's S3, for tests
// that must not trust our own S3 code.
func (l *Lab) AppS3Client() (*minio.Client, error) {
	return minio.New(fmt.Sprintf("127.0.0.1:%d", l.State.Ports["seaweedfs-s3"]), &minio.Options{
		Creds: credentials.NewStaticV4(l.State.AppS3Key, l.State.AppS3Secret, ""), BucketLookup: minio.BucketLookupPath})
}

// upSeaweedFS starts SeaweedFS on its own data dir, telemetry off and
// every port on loopback, and creates the application's bucket.
func (l *Lab) upSeaweedFS(ctx context.Context) error {
	if l.State.AppS3Key == "" {
		l.mu.Lock()
		l.State.AppS3Key, l.State.AppS3Secret = "app-"+randomHex(4), randomHex(20)
		l.mu.Unlock()
		if err := l.saveState(); err != nil {
			return err
		}
	}
	ports := map[string]int{}
	for _, n := range seaweedPorts {
		p, err := l.port("seaweedfs-" + n)
		if err != nil {
			return err
		}
		ports[n] = p
	}
	p := l.proc("seaweedfs")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "seaweedfs: already running (pid %d)\n", pid)
		return nil
	}
	dir := filepath.Join(l.Dir, "seaweedfs")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	// One identity with every right, as an application's own key.
	ident := map[string]any{"identities": []map[string]any{{
		"name":        "app",
		"credentials": []map[string]string{{"accessKey": l.State.AppS3Key, "secretKey": l.State.AppS3Secret}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	conf, err := json.Marshal(ident)
	if err != nil {
		return err
	}
	confPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	arg := func(k string, port int) string { return fmt.Sprintf("-%s=%d", k, port) }
	cmd := exec.Command(l.Bin.SeaweedFS, "mini", "-dir="+data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		// Nothing may leave the machine.
		"-master.telemetry=false",
		arg("master.port", ports["master"]), arg("master.port.grpc", ports["master-grpc"]),
		arg("volume.port", ports["volume"]), arg("volume.port.grpc", ports["volume-grpc"]),
		arg("filer.port", ports["filer"]), arg("filer.port.grpc", ports["filer-grpc"]),
		arg("s3.port", ports["s3"]), arg("s3.port.grpc", ports["s3-grpc"]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
		"-admin.ui=false", arg("admin.port", ports["admin"]), arg("admin.port.grpc", ports["admin-grpc"]), "-admin.port.legacy=0",
		"-s3.config="+confPath, "-bucket="+AppBucket)
	if _, err := p.start(cmd); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "seaweedfs: started, S3 on %s\n", l.AppS3Endpoint())
	mc, err := l.AppS3Client()
	if err != nil {
		return err
	}
	return p.waitReady(ctx, l.Dir, 90*time.Second, func(ctx context.Context) error {
		ok, err := mc.BucketExists(ctx, AppBucket)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("bucket %s not created yet", AppBucket)
		}
		return nil
	})
}

// StartSeaweedFS starts SeaweedFS again after StopProcess or KillProcess
// ("seaweedfs"), on its data.
func (l *Lab) StartSeaweedFS(ctx context.Context) error { return l.upSeaweedFS(ctx) }
