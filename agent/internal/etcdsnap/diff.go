package etcdsnap

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
)

// Contents is the newest value of every key at one revision, as sha256
// (values are compared, never kept).
type Contents struct {
	Revision int64
	Keys     map[string][sha256.Size]byte
}

// SnapshotContents reads a snapshot file read-only (internal/kvsnap):
// the sha256 of the newest value of every live key.
func SnapshotContents(path string) (*Contents, error) {
	s, err := kvsnap.Open(path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	c := &Contents{Keys: map[string][sha256.Size]byte{}}
	c.Revision, err = s.Each("", func(kv kvsnap.KeyValue) error {
		c.Keys[string(kv.Key)] = sha256.Sum256(kv.Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LiveContents reads every key of a running etcd at one revision, a page
// at a time.
func LiveContents(ctx context.Context, cli *clientv3.Client) (*Contents, error) {
	c := &Contents{Keys: map[string][sha256.Size]byte{}}
	key := "\x00"
	for {
		opts := []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithLimit(1000)}
		if c.Revision != 0 {
			opts = append(opts, clientv3.WithRev(c.Revision))
		}
		resp, err := cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, fmt.Errorf("read live keys: %w", err)
		}
		if c.Revision == 0 {
			c.Revision = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			c.Keys[string(kv.Key)] = sha256.Sum256(kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return c, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Impact is what a restore would do to one resource type in one namespace.
type Impact struct {
	// GroupResource is "configmaps", "deployments", "widgets.example.com";
	// keys outside /registry/ are "(non-Kubernetes keys)".
	GroupResource string
	// Namespace is empty for cluster-scoped objects.
	Namespace string
	// Disappear: live now, not in the snapshot. Reappear: in the snapshot,
	// not live. Change: both, different bytes.
	Disappear, Reappear, Change, Unchanged int64
	// Names of the objects in each class, sorted, at most MaxNames each.
	DisappearNames, ReappearNames, ChangeNames []string
}

// MaxNames caps the names listed per class and row.
const MaxNames = 50

// OtherKeys groups keys that are not Kubernetes objects.
const OtherKeys = "(non-Kubernetes keys)"

// Diff compares a snapshot with the live keys, grouped by resource and
// namespace, rows sorted by resource then namespace.
func Diff(snap, live *Contents) []Impact {
	rows := map[[2]string]*Impact{}
	row := func(key string) (*Impact, string) {
		gr, ns, name := ParseKey(key)
		k := [2]string{gr, ns}
		r, ok := rows[k]
		if !ok {
			r = &Impact{GroupResource: gr, Namespace: ns}
			rows[k] = r
		}
		return r, name
	}
	add := func(list *[]string, name string) {
		if len(*list) < MaxNames {
			*list = append(*list, name)
		}
	}
	for key, lv := range live.Keys {
		r, name := row(key)
		sv, ok := snap.Keys[key]
		switch {
		case !ok:
			r.Disappear++
			add(&r.DisappearNames, name)
		case sv != lv:
			r.Change++
			add(&r.ChangeNames, name)
		default:
			r.Unchanged++
		}
	}
	for key := range snap.Keys {
		if _, ok := live.Keys[key]; !ok {
			r, name := row(key)
			r.Reappear++
			add(&r.ReappearNames, name)
		}
	}
	out := make([]Impact, 0, len(rows))
	for _, r := range rows {
		sort.Strings(r.DisappearNames)
		sort.Strings(r.ReappearNames)
		sort.Strings(r.ChangeNames)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GroupResource != out[j].GroupResource {
			return out[i].GroupResource < out[j].GroupResource
		}
		return out[i].Namespace < out[j].Namespace
	})
	return out
}

// ParseKey splits a kube-apiserver etcd key: /registry/<resource>/[<ns>/]<name>
// for built-in types, /registry/<group>/<resource>/[<ns>/]<name> for
// custom resources and aggregated groups (a group has a dot). Services keep
// their objects under services/specs and endpoints under services/endpoints.
func ParseKey(key string) (groupResource, namespace, name string) {
	rest, ok := strings.CutPrefix(key, "/registry/")
	if !ok {
		return OtherKeys, "", key
	}
	parts := strings.Split(rest, "/")
	resource := parts[0]
	parts = parts[1:]
	switch {
	case strings.Contains(resource, ".") && len(parts) >= 2:
		resource = parts[0] + "." + resource
		parts = parts[1:]
	case resource == "services" && len(parts) >= 2 && (parts[0] == "specs" || parts[0] == "endpoints"):
		if parts[0] == "endpoints" {
			resource = "endpoints"
		}
		parts = parts[1:]
	}
	switch len(parts) {
	case 0:
		return resource, "", ""
	case 1:
		return resource, "", parts[0]
	}
	return resource, parts[0], strings.Join(parts[1:], "/")
}
