package cmdutil

import (
	"context"
	"fmt"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// AllowUnsignedUsage is the help of every verb's --allow-unsigned.
const AllowUnsignedUsage = "accept records that carry no signature (written before kubectl dr signed its records, or by an agent not yet enrolled); a record whose signature does not hold is refused whatever this says"

// clientTLS is the plugin's client certificate: --tls-* or their
// environment, else install's Secret dr-client-tls.
func clientTLS(ctx context.Context, f Factory) (mtls.Files, error) {
	o := f.AgentOptions(nil)
	if !o.TLS.IsZero() || o.ClusterTLS == nil {
		return o.TLS, nil
	}
	return o.ClusterTLS(ctx)
}

// RecordSigner is the key and certificate kubectl dr signs the records it
// writes with: its client certificate, which install's CA issued.
func RecordSigner(ctx context.Context, f Factory) (*signature.Signer, error) {
	files, err := clientTLS(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("sign the record: read kubectl dr's client certificate: %w", err)
	}
	pair, err := files.KeyPair()
	if err == nil {
		var sign *signature.Signer
		if sign, err = signature.FromKeyPair(pair); err == nil {
			return sign, nil
		}
	}
	return nil, fmt.Errorf("sign the record: kubectl dr's client certificate (--tls-cert/--tls-key or Secret %s): %w", ClientTLSSecret, err)
}

// RecordPolicy is what kubectl dr accepts of the records it reads: signed
// with a certificate of install's CA (the one its client certificate's
// files name), unsigned only with allowUnsigned.
func RecordPolicy(ctx context.Context, f Factory, allowUnsigned bool) signature.Policy {
	p := signature.Policy{AllowUnsigned: allowUnsigned}
	files, err := clientTLS(ctx, f)
	if err != nil {
		return p
	}
	if roots, err := files.Roots(); err == nil {
		p.Trust = &signature.Trust{Roots: roots, NodeOf: pki.CertNode}
	}
	return p
}
