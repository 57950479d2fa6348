package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// objSnap writes a snapshot of a real (embedded) etcd holding n
// ConfigMaps of kib KiB each, stored the way kube-apiserver stores them
// (protobuf under /registry/configmaps/NS/NAME), into a file:// store
// under cluster, and prints its name.
func objSnap(ctx context.Context, storeDir, cluster string, n, kib int) error {
	work, err := os.MkdirTemp("", "objsnap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	free := func() url.URL {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return url.URL{Scheme: "http", Host: l.Addr().String()}
	}
	peer, client := free(), free()
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir, cfg.LogLevel = "m1", filepath.Join(work, "data"), "error"
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.QuotaBackendBytes = 8 << 30
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(time.Minute):
		return fmt.Errorf("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	pb := protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)
	rng := rand.New(rand.NewSource(1))
	created := metav1.NewTime(time.Now().Add(-time.Hour))
	for i := range n {
		// A third random, the rest text: compresses about as cluster state does.
		raw := make([]byte, kib<<10/3)
		rng.Read(raw)
		cm := &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: fmt.Sprintf("ns-%02d", i%20), UID: types.UID(fmt.Sprintf("uid-%d", i)), CreationTimestamp: created, Labels: map[string]string{"app": fmt.Sprint(i % 7)}},
			Data:       map[string]string{"text": strings.Repeat("setting=value\n", (kib<<10-len(raw))/14)},
			BinaryData: map[string][]byte{"blob": raw},
		}
		var b bytes.Buffer
		if err := pb.Encode(cm, &b); err != nil {
			return err
		}
		if _, err := cli.Put(ctx, "/registry/configmaps/"+cm.Namespace+"/"+cm.Name, b.String()); err != nil {
			return err
		}
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	store, err := objstore.Open(objstore.Config{URL: "file://" + storeDir})
	if err != nil {
		return err
	}
	store = store.Sub(cluster)
	name := fmt.Sprintf("objsnap-%d-%dk", n, kib)
	file := name
	rawPath := filepath.Join(work, "snap.db")
	f, err := os.Create(rawPath)
	if err != nil {
		return err
	}
	size, err := io.Copy(f, rc)
	f.Close()
	if err != nil {
		return err
	}
	in, err := os.Open(rawPath)
	if err != nil {
		return err
	}
	defer in.Close()
	rawSum := sha256.New()
	var comp bytes.Buffer
	zw, err := zstd.NewWriter(&comp, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, io.TeeReader(in, rawSum)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	storedSum := sha256.Sum256(comp.Bytes())
	key := dbsnap.DataKey("bench", file, false)
	if _, err := store.Put(ctx, key, bytes.NewReader(comp.Bytes()), int64(comp.Len())); err != nil {
		return err
	}
	meta, err := json.Marshal(&dbsnap.Snapshot{
		Version: 1, Name: file, Node: "bench", Created: time.Now().UTC(), ClusterID: cluster,
		Revision: int64(n + 1), Size: size, SHA256: hex.EncodeToString(rawSum.Sum(nil)),
		StoredSize: int64(comp.Len()), StoredSHA256: hex.EncodeToString(storedSum[:]),
		Compression: "zstd", StoreKey: key, Uploaded: true,
	})
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, dbsnap.MetaKey("bench", file), bytes.NewReader(meta), int64(len(meta))); err != nil {
		return err
	}
	fmt.Printf("%s %d\n", file, size)
	return nil
}
