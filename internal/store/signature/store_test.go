package signature_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

func fileStore(t *testing.T) objstore.Store {
	t.Helper()
	s, err := objstore.Open(objstore.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s.Sub("cluster-1")
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// A record written with Put reads back under a policy that trusts its
// writer; changed, unsigned or unverifiable, it is refused with the
// reason a user can act on, and --allow-unsigned accepts only the
// unsigned.
func TestPolicyReadsWhatItsWriterSigned(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s := fileStore(t)
	key, data := "etcd/server-1/snap-1.json", []byte(`{"name":"snap-1"}`)
	node1 := w.node1
	if err := signature.Put(ctx, s, &node1, key, data); err != nil {
		t.Fatal(err)
	}
	strict := signature.Policy{Trust: &w.trust}
	got, who, err := strict.Read(ctx, s, "snapshot record", key, 1<<20, signature.Owner{Node: "server-1"})
	if err != nil || !bytes.Equal(got, data) || who.Node != "server-1" {
		t.Fatalf("read: %q %v %v", got, who, err)
	}

	// Changed after it was signed: refused, also with --allow-unsigned.
	put(t, s, key, []byte(`{"name":"snap-1","revision":1}`))
	for _, p := range []signature.Policy{strict, {Trust: &w.trust, AllowUnsigned: true}} {
		_, _, err := p.Read(ctx, s, "snapshot record", key, 1<<20, signature.Owner{Node: "server-1"})
		if !errors.Is(err, signature.ErrForged) || !strings.Contains(err.Error(), "snapshot record refused: signature does not hold: etcd/server-1/snap-1.json changed after it was signed") {
			t.Errorf("changed record (allow unsigned %v): %v", p.AllowUnsigned, err)
		}
	}

	// Planted without a signature: refused unless the user allows it.
	planted := "etcd/server-1/planted.json"
	put(t, s, planted, data)
	_, _, err = strict.Read(ctx, s, "snapshot record", planted, 1<<20, signature.Owner{Node: "server-1"})
	var unsigned *signature.UnsignedError
	if !errors.As(err, &unsigned) || !errors.Is(err, signature.ErrUnsigned) || !strings.Contains(err.Error(), "is not signed") || !strings.Contains(err.Error(), "--allow-unsigned") {
		t.Errorf("unsigned record: %v", err)
	}
	allow := signature.Policy{Trust: &w.trust, AllowUnsigned: true}
	if _, who, err := allow.Read(ctx, s, "snapshot record", planted, 1<<20, signature.Owner{Node: "server-1"}); err != nil || who != (signature.Who{}) {
		t.Errorf("unsigned record with --allow-unsigned: %v %v", who, err)
	}

	// A reader without a CA cannot check a signed record either.
	if err := signature.Put(ctx, s, &node1, key, data); err != nil {
		t.Fatal(err)
	}
	_, _, err = signature.Policy{}.Read(ctx, s, "snapshot record", key, 1<<20, signature.Owner{})
	if !errors.As(err, &unsigned) || !unsigned.NoTrust || !strings.Contains(err.Error(), "no CA to verify its signature with is known here") {
		t.Errorf("no trust: %v", err)
	}

	// Too large to be a record.
	if _, _, err := strict.Read(ctx, s, "snapshot record", key, 4, signature.Owner{}); err == nil || !strings.Contains(err.Error(), "larger than 4 bytes") {
		t.Errorf("oversized record: %v", err)
	}

	// Delete removes the signature; a missing one is no error.
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := signature.Delete(ctx, s, key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Stat(ctx, key+signature.Suffix); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("signature after Delete: %v", err)
	}
}

// Without a signer Put writes the record alone: what an agent not yet
// enrolled writes.
func TestPutWithoutSignerWritesNoSignature(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	if err := signature.Put(ctx, s, nil, "sets/b1.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := signature.Load(ctx, s, "sets/b1.json"); !errors.Is(err, signature.ErrUnsigned) {
		t.Fatalf("Load: %v, want ErrUnsigned", err)
	}
}
