package objstore

import "context"

// check round-trips a small object under key (random when ""); scoped
// credentials pass (see Probe).
func check(ctx context.Context, s Store, key string) error {
	_, err := probe(ctx, s, key)
	return err
}
