package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// A snapshot's record is signed by the agent of the node that took it;
// a restore trusts it only as signed: the record changed behind the
// agents' back is refused, so is a record planted without a signature
// (accepted only with --allow-unsigned), and nothing is changed.
func TestSnapshotRecordsAreSignedAndChecked(t *testing.T) {
	r := kubectlDR(t, nil, "etcd", "snapshot", "save", "--name", "signed-record", "-o", "json")
	if r.code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", r.code, r.stderr)
	}
	snap := snapshotJSON(t, r)
	prefix := "lab/" + theLab.State.ClusterID + "/"
	key := prefix + dbsnap.MetaKey(snap.Node, snap.Name)
	record := storeObject(t, key)

	env, err := signature.Parse(storeObject(t, key+signature.Suffix))
	if err != nil {
		t.Fatalf("the record's signature %s: %v", key+signature.Suffix, err)
	}
	leaf, err := x509.ParseCertificate(env.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := pki.CertNode(leaf); got != snap.Node {
		t.Errorf("the record of %s's snapshot is signed by %q (%s), want its node", snap.Node, got, leaf.Subject.CommonName)
	}
	if r := kubectlDR(t, nil, "etcd", "restore", snap.Name, "--dry-run", "--node", snap.Node); r.code != 0 || !strings.Contains(r.stdout, "Nothing was changed") {
		t.Fatalf("preview of the signed snapshot: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// The record rewritten to name other bytes: its signature no longer holds.
	t.Cleanup(func() { putStoreObject(t, key, record) })
	putStoreObject(t, key, bytes.Replace(record, []byte(snap.SHA256), []byte(strings.Repeat("0", 64)), 1))
	for _, extra := range [][]string{nil, {"--allow-unsigned"}} {
		r := kubectlDR(t, nil, append([]string{"etcd", "restore", snap.Name, "--dry-run", "--node", snap.Node}, extra...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "changed after it was signed") {
			t.Errorf("preview of a changed record %v: exit %d\n%s\nwant 1, refused as changed after it was signed", extra, r.code, r.stderr)
		}
	}
	// objects reads it on the plugin's side, and writes what it read into
	// the live cluster: it checks the same.
	if r := kubectlDR(t, nil, "objects", "ls", snap.Name, "-n", "kube-system"); r.code != 1 || !strings.Contains(r.stderr, "changed after it was signed") {
		t.Errorf("objects ls of a changed record: exit %d\n%s\nwant 1, refused as changed after it was signed", r.code, r.stderr)
	}
	putStoreObject(t, key, record)

	// A record planted under the node's prefix, pointing at the same
	// object, with no signature.
	planted := "planted-" + snap.Name
	plantedKey := prefix + dbsnap.MetaKey(snap.Node, planted)
	t.Cleanup(func() {
		mc, err := theLab.MinIOClient()
		if err != nil {
			t.Fatal(err)
		}
		mc.RemoveObject(context.Background(), theLab.State.Bucket, plantedKey, minio.RemoveObjectOptions{})
	})
	putStoreObject(t, plantedKey, bytes.Replace(record, []byte(`"`+snap.Name+`"`), []byte(`"`+planted+`"`), 1))
	r = kubectlDR(t, nil, "etcd", "restore", planted, "--dry-run", "--node", snap.Node)
	if r.code != 1 || !strings.Contains(r.stderr, "is not signed") || !strings.Contains(r.stderr, "--allow-unsigned") {
		t.Errorf("preview of a planted unsigned record: exit %d\n%s\nwant 1, refused as not signed, naming --allow-unsigned", r.code, r.stderr)
	}
	r = kubectlDR(t, nil, "etcd", "restore", planted, "--dry-run", "--node", snap.Node, "--allow-unsigned")
	if r.code != 0 || !strings.Contains(r.stdout, "Nothing was changed") {
		t.Errorf("preview of the unsigned record with --allow-unsigned: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
