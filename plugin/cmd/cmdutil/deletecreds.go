package cmdutil

import (
	"context"
	"fmt"
	"strings"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// DeleteCredentials are the plugin's delete-capable store credentials
// (--store flags and environment, else Secret dr-store), for the one
// request a prune sends to the node that does it: nodes holding
// put/get-only credentials cannot delete. The agent keeps them in memory
// for that request only. nil for a file:// store (no credentials).
func DeleteCredentials(ctx context.Context, f Factory) (*agentv1.StoreCredentials, error) {
	cfg := f.StoreConfig()
	if cfg.URL == "" {
		var err error
		if cfg, err = f.StoreFromSecret(ctx); err != nil {
			return nil, fmt.Errorf("the store's delete-capable credentials (Secret %s): %w", StoreSecret, err)
		}
	}
	if !strings.HasPrefix(cfg.URL, "s3://") {
		return nil, nil
	}
	access, secret, err := cfg.Credentials()
	if err != nil {
		return nil, fmt.Errorf("the store's delete-capable credentials: %w", err)
	}
	return &agentv1.StoreCredentials{AccessKey: access, SecretKey: secret}, nil
}
