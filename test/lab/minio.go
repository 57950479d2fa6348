package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func (l *Lab) minioEndpoint() string {
	return fmt.Sprintf("127.0.0.1:%d", l.State.Ports["minio"])
}

// upMinIO starts MinIO on its own data dir and creates the lab's bucket.
func (l *Lab) upMinIO(ctx context.Context) error {
	p := l.proc("minio")
	if pid, ok := p.pid(l.Dir); ok {
		fmt.Fprintf(l.log, "minio: already running (pid %d)\n", pid)
		return nil
	}
	data := filepath.Join(l.Dir, "minio")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(l.Bin.MinIO, "server", data,
		"--address", l.minioEndpoint(),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", l.State.Ports["minio-console"]),
		"--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+l.State.MinIOUser,
		"MINIO_ROOT_PASSWORD="+l.State.MinIOSecret,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	if _, err := p.start(cmd); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "minio: started on http://%s\n", l.minioEndpoint())
	mc, err := l.MinIOClient()
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	var exists bool
	// Live is not ready: MinIO answers "Server not initialized yet"
	// until its object layer is up, so ready means the bucket can be
	// asked about.
	if err := p.waitReady(ctx, l.Dir, 60*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.minioEndpoint()+"/minio/health/ready", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		if exists, err = mc.BucketExists(ctx, l.State.Bucket); err != nil {
			return fmt.Errorf("check bucket %s: %w", l.State.Bucket, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if !exists {
		if err := mc.MakeBucket(ctx, l.State.Bucket, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("minio: create bucket %s: %w", l.State.Bucket, err)
		}
	}
	return nil
}

// MinIOClient is a client for the lab's MinIO with its root credentials.
func (l *Lab) MinIOClient() (*minio.Client, error) {
	return minio.New(l.minioEndpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(l.State.MinIOUser, l.State.MinIOSecret, ""),
		Secure: false,
	})
}
