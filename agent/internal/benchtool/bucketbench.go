package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/buckets"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// The bucket benchmark's commands (hack/bench/bucket-copy.sh). The
// application's S3 is $DR_APP_S3_ENDPOINT with $DR_APP_S3_* credentials,
// the store the lab's MinIO ($DR_STORE, $DR_S3_ENDPOINT, AWS_*).
func bucketCmd(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	bucket := fs.String("bucket", "bench-media", "the application's bucket")
	objects := fs.Int("objects", 10000, "objects to write")
	mib := fs.Int("mib", 1024, "total MiB")
	percent := fs.Float64("percent", 1, "percent of objects to rewrite")
	to := fs.String("to", "", "mirror: the store's bucket to copy into")
	source := fs.String("source", "", "pass: the bucket source's name in the store")
	key := fs.String("key", "", "pass: the snapshot key file (encrypts the copies)")
	workers := fs.Int("concurrency", 8, "objects at once")
	fs.Parse(args)
	switch cmd {
	case "bucketfill":
		return bucketFill(ctx, *bucket, *objects, *mib)
	case "buckettouch":
		return bucketTouch(ctx, *bucket, *percent)
	case "bucketmirror":
		return bucketMirror(ctx, *bucket, *to, *workers)
	case "bucketpass":
		return bucketPass(ctx, *bucket, *source, *key, *workers)
	case "bucketdrop":
		return bucketDrop(ctx, *to, *source)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func appClient() (*minio.Client, error) {
	ep := strings.TrimPrefix(os.Getenv("DR_APP_S3_ENDPOINT"), "http://")
	return minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(os.Getenv("DR_APP_S3_ACCESS_KEY_ID"), os.Getenv("DR_APP_S3_SECRET_ACCESS_KEY"), ""),
		BucketLookup: minio.BucketLookupPath})
}

func storeClient() (*minio.Client, error) {
	ep := strings.TrimPrefix(os.Getenv("DR_S3_ENDPOINT"), "http://")
	return minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")})
}

// parallel runs f on each of n items, workers at once.
func parallel(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// bucketFill writes objects: all but four share 3/4 of the bytes, the
// four others 1/4 (64 MiB each at 1 GiB), so that memory must not follow
// an object's size. Contents are random (media does not compress).
func bucketFill(ctx context.Context, bucket string, objects, mib int) error {
	mc, err := appClient()
	if err != nil {
		return err
	}
	if ok, err := mc.BucketExists(ctx, bucket); err != nil {
		return err
	} else if !ok {
		if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			return err
		}
	}
	total := int64(mib) << 20
	big := total / 4 / 4
	small := (total - 4*big) / int64(objects-4)
	start := time.Now()
	err = parallel(objects, 8, func(i int) error {
		size := small
		if i < 4 {
			size = big
		}
		data := make([]byte, size)
		rand.New(rand.NewSource(int64(i))).Read(data)
		_, err := mc.PutObject(ctx, bucket, objectName(i), bytes.NewReader(data), size, minio.PutObjectOptions{})
		return err
	})
	fmt.Fprintf(os.Stderr, "wrote %d objects, %d MiB in %s\n", objects, mib, time.Since(start).Round(time.Second))
	return err
}

func objectName(i int) string {
	if i < 4 {
		return fmt.Sprintf("video/%02d.bin", i)
	}
	return fmt.Sprintf("media/%03d/%05d.jpg", i%1000, i)
}

// bucketTouch rewrites percent of the small objects with new bytes.
func bucketTouch(ctx context.Context, bucket string, percent float64) error {
	mc, err := appClient()
	if err != nil {
		return err
	}
	var keys []minio.ObjectInfo
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "media/", Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		keys = append(keys, o)
	}
	n := int(float64(len(keys)) * percent / 100)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	return parallel(n, 8, func(i int) error {
		data := make([]byte, keys[i].Size)
		rand.New(rand.NewSource(time.Now().UnixNano() + int64(i))).Read(data)
		_, err := mc.PutObject(ctx, bucket, keys[i].Key, bytes.NewReader(data), keys[i].Size, minio.PutObjectOptions{})
		return err
	})
}

// bucketMirror is the plain parallel copy mc mirror does: list, then
// GetObject streamed into PutObject, with minio-go's defaults.
func bucketMirror(ctx context.Context, bucket, to string, workers int) error {
	src, err := appClient()
	if err != nil {
		return err
	}
	dst, err := storeClient()
	if err != nil {
		return err
	}
	if err := dst.MakeBucket(ctx, to, minio.MakeBucketOptions{}); err != nil {
		return err
	}
	var objs []minio.ObjectInfo
	for o := range src.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		objs = append(objs, o)
	}
	return parallel(len(objs), workers, func(i int) error {
		r, err := src.GetObject(ctx, bucket, objs[i].Key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = dst.PutObject(ctx, to, objs[i].Key, io.Reader(r), objs[i].Size, minio.PutObjectOptions{})
		return err
	})
}

// bucketDrop removes what a run wrote into the store's MinIO: the
// mirror's bucket (to) and the pass's copy (bench/buckets/<source>/), so
// that runs do not fill the disk.
func bucketDrop(ctx context.Context, to, source string) error {
	mc, err := storeClient()
	if err != nil {
		return err
	}
	drop := func(bucket, prefix string) error {
		objs := mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true})
		for e := range mc.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			if e.Err != nil {
				return e.Err
			}
		}
		return nil
	}
	if to != "" {
		if err := drop(to, ""); err != nil {
			return err
		}
		if err := mc.RemoveBucket(ctx, to); err != nil {
			return err
		}
	}
	if source != "" {
		store, err := objstore.Open(objstore.Config{}.FromEnv())
		if err != nil {
			return err
		}
		objs, err := store.Sub("bench").List(ctx, "buckets/"+source+"/")
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := store.Sub("bench").Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucketPass runs the agent's pass engine once, as the agent does.
func bucketPass(ctx context.Context, bucket, source, keyFile string, workers int) error {
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	b, err := objstore.OpenBucket(objstore.Config{URL: "s3://" + bucket, Endpoint: os.Getenv("DR_APP_S3_ENDPOINT"), PathStyle: true,
		AccessKey: os.Getenv("DR_APP_S3_ACCESS_KEY_ID"), SecretKey: os.Getenv("DR_APP_S3_SECRET_ACCESS_KEY")})
	if err != nil {
		return err
	}
	spool, err := os.MkdirTemp("", "bench-spool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	e := &buckets.Engine{Store: store.Sub("bench"), SpoolDir: spool, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if keyFile != "" {
		if e.Recipient, _, err = dbsnap.LoadRecipient(keyFile); err != nil {
			return err
		}
	}
	res, err := e.Pass(ctx, buckets.Source{Name: source, Bucket: b, Concurrency: workers})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pass %s: listed %d, copied %d, unchanged %d, uploaded %d bytes\n", source, res.Listed, res.Copied, res.Unchanged, res.BytesUploaded)
	return nil
}
