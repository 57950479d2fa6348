package signature_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

const nodeDomain = ".node.dr-agent"

func nodeOf(c *x509.Certificate) string {
	for _, n := range c.DNSNames {
		if node, ok := strings.CutSuffix(n, nodeDomain); ok && node != "" {
			return node
		}
	}
	return ""
}

func signer(t testing.TB, kp pki.KeyPair) signature.Signer {
	t.Helper()
	cb, _ := pem.Decode(kp.CertPEM)
	key, err := pki.ParseSigner(kp.KeyPEM)
	if cb == nil || err != nil {
		t.Fatalf("key pair: %v", err)
	}
	return signature.Signer{Key: key, Chain: [][]byte{cb.Bytes}}
}

type world struct {
	trust                    signature.Trust
	plugin, node1, bootstrap signature.Signer
	otherCA                  signature.Signer
}

func newWorld(t testing.TB) world {
	t.Helper()
	ca, caPair, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA, o pki.LeafOptions) signature.Signer {
		kp, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		return signer(t, kp)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPair.CertPEM) {
		t.Fatal("CA PEM")
	}
	other, _, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	return world{
		trust:     signature.Trust{Roots: pool, NodeOf: nodeOf},
		plugin:    issue(ca, pki.LeafOptions{CommonName: "kubectl-dr", Client: true}),
		node1:     issue(ca, pki.LeafOptions{CommonName: "server-1" + nodeDomain, DNSNames: []string{"server-1" + nodeDomain, "dr-agent"}, Server: true}),
		bootstrap: issue(ca, pki.LeafOptions{CommonName: "dr-agent", DNSNames: []string{"dr-agent"}, Server: true}),
		otherCA:   issue(other, pki.LeafOptions{CommonName: "kubectl-dr", Client: true}),
	}
}

// roundTrip signs, stores the envelope's bytes and parses them back, as a
// reader gets them from the store.
func roundTrip(t *testing.T, s signature.Signer, key string, data []byte) signature.Envelope {
	t.Helper()
	e, err := s.Sign(key, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := signature.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func TestSignaturesHoldForTheirWriter(t *testing.T) {
	w := newWorld(t)
	data := []byte(`{"name":"snap-1"}`)

	e := roundTrip(t, w.plugin, "sets/b1.json", data)
	who, err := w.trust.Verify(e, "sets/b1.json", data, signature.Owner{PluginOnly: true})
	if err != nil || who.Node != "" || who.String() != "kubectl dr (kubectl-dr)" {
		t.Fatalf("plugin's record: %v, %v", who, err)
	}

	e = roundTrip(t, w.node1, "etcd/server-1/snap-1.json", data)
	who, err = w.trust.Verify(e, "etcd/server-1/snap-1.json", data, signature.Owner{Node: "server-1"})
	if err != nil || who.Node != "server-1" {
		t.Fatalf("node's own record: %v, %v", who, err)
	}
	// Any enrolled node may write a cluster-wide object (a WAL source moves
	// with its primary).
	if _, err := w.trust.Verify(e, "etcd/server-1/snap-1.json", data, signature.Owner{}); err != nil {
		t.Fatal(err)
	}
}

func TestForgeriesAreRefused(t *testing.T) {
	w := newWorld(t)
	data := []byte(`{"name":"snap-1"}`)
	node := roundTrip(t, w.node1, "etcd/server-1/snap-1.json", data)
	for _, c := range []struct {
		name  string
		e     signature.Envelope
		key   string
		data  []byte
		owner signature.Owner
		want  string
	}{
		{"changed bytes", node, "etcd/server-1/snap-1.json", []byte(`{"name":"snap-2"}`), signature.Owner{Node: "server-1"}, "changed after it was signed"},
		{"moved to another key", node, "etcd/server-1/snap-9.json", data, signature.Owner{Node: "server-1"}, "carries the signature of etcd/server-1/snap-1.json"},
		{"another node's object", roundTrip(t, w.node1, "etcd/server-2/x.json", data), "etcd/server-2/x.json", data, signature.Owner{Node: "server-2"}, "belongs to node server-2 but is signed by node server-1"},
		{"a node signing the plugin's record", roundTrip(t, w.node1, "sets/b1.json", data), "sets/b1.json", data, signature.Owner{PluginOnly: true}, "only kubectl dr writes it"},
		{"the shared bootstrap certificate", roundTrip(t, w.bootstrap, "sets/b1.json", data), "sets/b1.json", data, signature.Owner{}, "names no node and is not kubectl dr's"},
		{"another cluster's CA", roundTrip(t, w.otherCA, "sets/b1.json", data), "sets/b1.json", data, signature.Owner{}, "not from this cluster's CA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := w.trust.Verify(c.e, c.key, c.data, c.owner)
			if !errors.Is(err, signature.ErrForged) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrForged with %q", err, c.want)
			}
		})
	}

	// A signature swapped for one over other bytes by the same key.
	other := roundTrip(t, w.node1, "etcd/server-1/snap-1.json", []byte("other"))
	node.Signature = other.Signature
	if _, err := w.trust.Verify(node, "etcd/server-1/snap-1.json", data, signature.Owner{Node: "server-1"}); !errors.Is(err, signature.ErrForged) {
		t.Fatalf("swapped signature: %v", err)
	}
}

func TestParseRefusesWhatIsNoSignature(t *testing.T) {
	for _, raw := range []string{"", "{", `{"format":"other"}`, `{"format":"kubectl-dr.signature/v1"}`, strings.Repeat(" ", signature.MaxEnvelope+1)} {
		if _, err := signature.Parse([]byte(raw)); !errors.Is(err, signature.ErrForged) {
			t.Errorf("Parse(%.20q): %v, want ErrForged", raw, err)
		}
	}
}
