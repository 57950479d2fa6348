package preflight

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-dr/kubectl-dr/internal/k3sboot"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

const theToken = "K10deadbeef::server:0123456789abcdef\n"

var aesKey = bytes.Repeat([]byte{7}, 32)

func encConfig(key []byte) []byte {
	return []byte(`{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"aescbckey","secret":"` +
		base64.StdEncoding.EncodeToString(key) + `"}]}},{"identity":{}}]}]}`)
}

func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

func pb(t *testing.T, obj runtime.Object) []byte {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := serializer.NewCodecFactory(s).EncoderForVersion(protobuf.NewSerializer(s, s), obj.GetObjectKind().GroupVersionKind().GroupVersion())
	if err := enc.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshotOf runs a real one-member etcd (embedded), writes what k3s and
// kube-apiserver would (bootstrap data, a Node, an encrypted Secret) and
// saves a snapshot as the agent does.
func snapshotOf(t *testing.T, kv map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	peer, client := freeURL(t), freeURL(t)
	cfg := embed.NewConfig()
	cfg.Name = "m1"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "m1=" + peer.String()
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := t.Context()
	for k, v := range kv {
		if _, err := cli.Put(ctx, k, string(v)); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(dir, "snap.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func k3sCluster(t *testing.T, kubelet string) map[string][]byte {
	t.Helper()
	boot, err := k3sboot.Encrypt(theToken, []byte(`{"ServerCA":{"Content":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: metav1.ObjectMeta{Name: "server-1"},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet}}}
	secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Data: map[string][]byte{"password": []byte("hunter2")}}
	block, _ := aes.NewCipher(aesKey)
	ct, err := aestransformer.NewCBCTransformer(block).TransformToStorage(t.Context(), pb(t, secret), value.DefaultContext("/registry/secrets/shop/db"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		k3sboot.Key(theToken):        boot,
		"/registry/minions/server-1": pb(t, node),
		"/registry/secrets/shop/db":  append([]byte("k8s:enc:aescbc:v1:aescbckey:"), ct...),
	}
}

// k3sStandin is a k3s binary that only answers --version (k3s itself
// cannot be built here).
func k3sStandin(t *testing.T, version string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k3s")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho 'k3s version "+version+" (abcdef12)'\necho 'go version go1.23.4'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func row(t *testing.T, rows []Row, check string) Row {
	t.Helper()
	for _, r := range rows {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %s row in %+v", check, rows)
	return Row{}
}

func dataDir(t *testing.T, token string, enc []byte) string {
	t.Helper()
	d := t.TempDir()
	if token != "" {
		os.MkdirAll(filepath.Join(d, "server"), 0o700)
		os.WriteFile(filepath.Join(d, "server", "token"), []byte(token), 0o600)
	}
	if enc != nil {
		os.MkdirAll(filepath.Join(d, "server", "cred"), 0o700)
		os.WriteFile(filepath.Join(d, "server", "cred", "encryption-config.json"), enc, 0o600)
	}
	return d
}

func TestPreflightWithK3sStandin(t *testing.T) {
	path := snapshotOf(t, k3sCluster(t, "v1.31.4+k3s1"))
	snap := &dbsnap.Snapshot{Name: "s1", Size: 1 << 20}
	plenty := func(string) (uint64, error) { return 1 << 40, nil }
	ctx := context.Background()

	t.Run("new host, escrow fits", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, NewHost: true, DataDir: filepath.Join(t.TempDir(), "var/lib/rancher/k3s"), Flavor: "k3s",
			K3sBinary: k3sStandin(t, "v1.31.6+k3s1"), Free: plenty,
			Escrow: map[string][]byte{"server/token": []byte(theToken), "server/cred/encryption-config.json": encConfig(aesKey)}})
		for _, r := range rows {
			if r.State != OK {
				t.Errorf("%s: %s %s", r.Check, r.State, r.Detail)
			}
		}
		if r := row(t, rows, CheckEncryption); !strings.Contains(r.Detail, "1 encrypted Secret(s)") {
			t.Errorf("encryption: %s", r.Detail)
		}
	})
	t.Run("wrong token on this node", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, DataDir: dataDir(t, "K10ab::server:another\n", encConfig(aesKey)), Flavor: "k3s",
			K3sBinary: k3sStandin(t, "v1.31.6+k3s1"), Free: plenty})
		r := row(t, rows, CheckToken)
		if r.State != Failed || !strings.Contains(r.Detail, k3sboot.RefusedMessage) || !strings.Contains(r.Detail, k3sboot.Key(theToken)) || !strings.Contains(r.Fix, "--token-from-store") {
			t.Errorf("token row = %+v", r)
		}
		if f := Failures(rows, nil); len(f) != 1 {
			t.Errorf("failures = %+v, want the token only", f)
		}
		if f := Failures(rows, []string{CheckToken}); len(f) != 0 {
			t.Errorf("failures with the token skipped = %+v", f)
		}
	})
	t.Run("no encryption config", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, NewHost: true, DataDir: t.TempDir(), Flavor: "k3s",
			K3sBinary: k3sStandin(t, "v1.31.6+k3s1"), Free: plenty,
			Escrow: map[string][]byte{"server/token": []byte(theToken)}})
		r := row(t, rows, CheckEncryption)
		if r.State != Failed || !strings.Contains(r.Detail, `1 Secret(s) in the snapshot are encrypted at rest (aescbc key "aescbckey")`) {
			t.Errorf("encryption row = %+v", r)
		}
	})
	t.Run("another cluster's encryption config", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, DataDir: dataDir(t, theToken, encConfig(bytes.Repeat([]byte{9}, 32))), Flavor: "k3s",
			K3sBinary: k3sStandin(t, "v1.31.6+k3s1"), Free: plenty})
		if r := row(t, rows, CheckEncryption); r.State != Failed || !strings.Contains(r.Detail, "does not decrypt") {
			t.Errorf("encryption row = %+v", r)
		}
		if r := row(t, rows, CheckToken); r.State != OK {
			t.Errorf("token row = %+v", r)
		}
	})
	t.Run("older k3s", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, DataDir: dataDir(t, theToken, encConfig(aesKey)), Flavor: "k3s",
			K3sBinary: k3sStandin(t, "v1.30.9+k3s1"), Free: plenty})
		r := row(t, rows, CheckK3sVersion)
		if r.State != Failed || !strings.Contains(r.Detail, "v1.30.9+k3s1 on this node is older than the v1.31.4+k3s1") || !strings.Contains(r.Fix, "v1.31") {
			t.Errorf("version row = %+v", r)
		}
	})
	t.Run("no k3s binary on a new host", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, NewHost: true, DataDir: dataDir(t, "", nil), Flavor: "k3s",
			K3sBinary: filepath.Join(t.TempDir(), "k3s"), Free: plenty, Escrow: map[string][]byte{"server/token": []byte(theToken)}})
		if r := row(t, rows, CheckK3sVersion); r.State != Failed || !strings.Contains(r.Fix, "install k3s") {
			t.Errorf("version row = %+v", r)
		}
	})
	t.Run("no k3s binary on a server", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, DataDir: dataDir(t, theToken, encConfig(aesKey)), Flavor: "k3s",
			K3sBinary: filepath.Join(t.TempDir(), "k3s"), Free: plenty})
		if r := row(t, rows, CheckK3sVersion); r.State != Skipped {
			t.Errorf("version row = %+v", r)
		}
	})
	t.Run("full disk", func(t *testing.T) {
		rows := Run(ctx, Input{Snapshot: snap, Path: path, DataDir: dataDir(t, theToken, encConfig(aesKey)), Flavor: "etcd",
			Free: func(string) (uint64, error) { return 1 << 20, nil }})
		if r := row(t, rows, CheckDisk); r.State != Failed || !strings.Contains(r.Detail, "needs 2.0 MiB") {
			t.Errorf("disk row = %+v", r)
		}
		if r := row(t, rows, CheckK3sVersion); r.State != Skipped {
			t.Errorf("version row on the etcd flavour = %+v", r)
		}
	})
}

func TestPreflightPlainEtcd(t *testing.T) {
	path := snapshotOf(t, map[string][]byte{"/registry/configmaps/a/b": []byte("x")})
	rows := Run(context.Background(), Input{Snapshot: &dbsnap.Snapshot{Name: "s", Size: 10}, Path: path, DataDir: t.TempDir(), Flavor: "etcd"})
	for _, c := range []string{CheckToken, CheckK3sVersion, CheckEncryption} {
		if r := row(t, rows, c); r.State != Skipped {
			t.Errorf("%s = %+v, want skipped", c, r)
		}
	}
	if r := row(t, rows, CheckDisk); r.State != OK {
		t.Errorf("disk = %+v", r)
	}
}
