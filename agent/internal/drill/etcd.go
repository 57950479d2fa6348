package drill

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/etcdsnap"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/kvsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/registry"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// Count keys of an etcd part: what the scratch member serves and what the
// snapshot file holds, per resource type ("deployments.apps", "pods";
// keys that hold no API object are OtherKeys).
const (
	CountServed   = "served:"
	CountSnapshot = "snapshot:"
	OtherKeys     = "(other)"
)

// startLimit bounds how long the scratch member may take to serve.
const startLimit = 2 * time.Minute

// RunEtcd rehearses the datastore's restore from snap (looked up in the store
// by the caller).
func (e *Engine) RunEtcd(ctx context.Context, drillID string, snap *dbsnap.Snapshot, keep bool, progress Progress) (*Result, error) {
	if err := check(drillID, LayerEtcd, snap.Name); err != nil {
		return nil, err
	}
	p, err := e.start(drillID, LayerEtcd, snap.Name, progress)
	if err != nil {
		return nil, err
	}
	r := p.res
	r.RecoveryPoint = snap.Created
	f := r.Facts
	f["snapshot"], f["node"], f["storeKey"] = snap.Name, snap.Node, snap.StoreKey
	f["sha256"], f["storedSHA256"] = snap.SHA256, snap.StoredSHA256
	f["size"], f["storedSize"] = strconv.FormatInt(snap.Size, 10), strconv.FormatInt(snap.StoredSize, 10)
	f["revision"], f["datastore"] = strconv.FormatInt(snap.Revision, 10), snap.DatastoreKind()
	f["created"] = snap.Created.UTC().Format(time.RFC3339)
	f["encryption"] = snap.Encryption
	if f["encryption"] == "" {
		f["encryption"] = "none"
	}
	if snap.EtcdVersion != "" {
		f["etcdVersion"] = snap.EtcdVersion
	}
	if snap.Encrypted() && e.Identity == nil && e.Unattended {
		ok := p.step("fetch", true, func() (string, error) {
			if err := dbsnap.VerifyStored(ctx, e.Store, snap); err != nil {
				return "", fmt.Errorf("%s: %w", snap.StoreKey, err)
			}
			return fmt.Sprintf("%s: %d bytes stored, sha256 %s as recorded (not decrypted)", snap.StoreKey, snap.StoredSize, short(snap.StoredSHA256)), nil
		})
		if ok {
			r.NotRun = keyless("snapshot "+snap.Name, "its stored object was read back and matched its recorded size and sha256")
		}
		return p.finish(keep), nil
	}
	file := filepath.Join(p.scratch, "snapshot.db")
	ok := p.step("fetch", true, func() (string, error) {
		id, err := e.identity(snap.Encrypted(), "snapshot "+snap.Name)
		if err != nil {
			return "", err
		}
		if err := dbsnap.FetchCache(ctx, e.Store, snap, id, file); err != nil {
			return "", fmt.Errorf("%s: %w", snap.StoreKey, err)
		}
		r.BytesRestored = snap.Size
		return fmt.Sprintf("%s: %d bytes stored, sha256 %s as recorded", snap.StoreKey, snap.StoredSize, short(snap.StoredSHA256)), nil
	})
	ok = ok && p.step("verify", true, func() (string, error) {
		if err := dbsnap.VerifyLocal(file, snap); err != nil {
			return "", fmt.Errorf("%s: %w", snap.StoreKey, err)
		}
		return fmt.Sprintf("%d bytes, sha256 %s as recorded", snap.Size, short(snap.SHA256)), nil
	})
	if ok && snap.DatastoreKind() == dbsnap.DatastoreSQLite {
		e.sqlite(ctx, p, snap, file)
	} else if ok {
		e.etcdMember(ctx, p, snap, file, drillID)
	}
	return p.finish(keep), nil
}

// etcdMember builds a member from the verified file, serves it and counts.
func (e *Engine) etcdMember(ctx context.Context, p *part, snap *dbsnap.Snapshot, file, drillID string) {
	peer, err := loopbackURL()
	if err == nil {
		var client url.URL
		if client, err = loopbackURL(); err == nil {
			e.serveMember(ctx, p, snap, file, drillID, peer, client)
			return
		}
	}
	p.problem(fmt.Sprintf("pick loopback ports for the scratch etcd: %v", err))
}

func (e *Engine) serveMember(ctx context.Context, p *part, snap *dbsnap.Snapshot, file, drillID string, peer, client url.URL) {
	dataDir := filepath.Join(p.scratch, "data")
	const member = "drill"
	var built *restoreplan.Built
	ok := p.step("restore", true, func() (string, error) {
		var err error
		built, err = restoreplan.BuildFromFile(file, snap, restoreplan.Member{
			Name: member, DataDir: dataDir, PeerURLs: []string{peer.String()},
			InitialCluster: member + "=" + peer.String(), InitialClusterToken: drillID,
		}, dataDir, drillID)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("member data dir at revision %d, database %d bytes", built.Revision, built.DBSize), nil
	})
	if !ok {
		return
	}
	var etcd *embed.Etcd
	defer func() {
		if etcd != nil {
			etcd.Close()
		}
	}()
	ok = p.step("start", true, func() (string, error) {
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = member, dataDir
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.InitialCluster = member + "=" + peer.String()
		cfg.InitialClusterToken = drillID
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		var err error
		if etcd, err = embed.StartEtcd(cfg); err != nil {
			etcd = nil
			return "", fmt.Errorf("start the scratch etcd on %s: %w", dataDir, err)
		}
		select {
		case <-etcd.Server.ReadyNotify():
		case err := <-etcd.Err():
			return "", fmt.Errorf("scratch etcd on %s: %w", dataDir, err)
		case <-time.After(startLimit):
			return "", fmt.Errorf("scratch etcd on %s not ready after %s", dataDir, startLimit)
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "serving " + client.String(), nil
	})
	if !ok {
		return
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client.String()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		p.problem(fmt.Sprintf("connect to the scratch etcd: %v", err))
		return
	}
	defer cli.Close()
	var served int64
	ok = p.step("health", true, func() (string, error) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := cli.Status(sctx, client.String())
		if err != nil {
			return "", fmt.Errorf("scratch etcd status: %w", err)
		}
		if len(st.Errors) > 0 {
			return "", fmt.Errorf("scratch etcd reports: %s", strings.Join(st.Errors, "; "))
		}
		served = st.Header.Revision
		p.res.Facts["servedRevision"] = strconv.FormatInt(served, 10)
		p.res.Facts["servedEtcdVersion"] = st.Version
		if served != snap.Revision {
			return "", fmt.Errorf("scratch etcd serves revision %d, snapshot %s's metadata says %d", served, snap.Name, snap.Revision)
		}
		return fmt.Sprintf("healthy, etcd %s, revision %d as recorded", st.Version, served), nil
	})
	if !ok {
		return
	}
	e.countEtcd(ctx, p, cli, served, file)
	p.step("stop", false, func() (string, error) {
		cli.Close()
		etcd.Close()
		etcd = nil
		return "scratch etcd stopped", nil
	})
}

// countEtcd counts the keys per resource type the scratch member serves
// (keys only, a page at a time) and those in the snapshot file, and
// compares them.
func (e *Engine) countEtcd(ctx context.Context, p *part, cli *clientv3.Client, rev int64, file string) {
	served := map[string]int64{}
	fromFile := map[string]int64{}
	ok := p.step("count", false, func() (string, error) {
		key := "\x00"
		for {
			resp, err := cli.Get(ctx, key, clientv3.WithFromKey(), clientv3.WithKeysOnly(), clientv3.WithLimit(1000), clientv3.WithRev(rev))
			if err != nil {
				return "", fmt.Errorf("range the scratch etcd: %w", err)
			}
			for _, kv := range resp.Kvs {
				served[resourceOf(string(kv.Key))]++
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		s, err := kvsnap.Open(file)
		if err != nil {
			return "", err
		}
		defer s.Close()
		if _, err := s.Each("", func(kv kvsnap.KeyValue) error {
			fromFile[resourceOf(string(kv.Key))]++
			return nil
		}); err != nil {
			return "", err
		}
		for k, n := range served {
			p.res.Counts[CountServed+k] = n
		}
		for k, n := range fromFile {
			p.res.Counts[CountSnapshot+k] = n
		}
		return fmt.Sprintf("%d keys served in %d resource types, %d in the snapshot file", sum(served), len(served), sum(fromFile)), nil
	})
	if !ok {
		return
	}
	p.step("compare", false, func() (string, error) {
		if d := diffCounts(served, fromFile); d != "" {
			return "", fmt.Errorf("the scratch etcd serves other counts than snapshot file holds: %s", d)
		}
		return fmt.Sprintf("%d resource types, counts equal", len(served)), nil
	})
}

// sqlite rehearses a SQLite (kine) snapshot: the copy a restore puts in
// place of state.db, integrity-checked and counted read-only.
func (e *Engine) sqlite(ctx context.Context, p *part, snap *dbsnap.Snapshot, file string) {
	db := filepath.Join(p.scratch, "state.db")
	ok := p.step("restore", true, func() (string, error) {
		in, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer in.Close()
		n, sum, err := durable.Copy(db, in, 0o600)
		if err != nil {
			return "", fmt.Errorf("copy the snapshot to %s: %w", db, err)
		}
		if got := hex.EncodeToString(sum); got != snap.SHA256 || n != snap.Size {
			return "", fmt.Errorf("%w: %s is %d bytes with sha256 %s, snapshot %s is %d bytes, %s", dbsnap.ErrChecksum, db, n, got, snap.Name, snap.Size, snap.SHA256)
		}
		return fmt.Sprintf("state.db copy, %d bytes", n), nil
	})
	ok = ok && p.step("start", true, func() (string, error) {
		if err := etcdsnap.CheckSQLite(ctx, db); err != nil {
			return "", fmt.Errorf("%s: %w", snap.StoreKey, err)
		}
		return "integrity check ok; not served: kine is not part of the agent, the copy was opened read-only", nil
	})
	if !ok {
		return
	}
	p.step("count", false, func() (string, error) {
		c, err := etcdsnap.SQLiteKeys{Path: db}.ReadKeys(ctx)
		if err != nil {
			return "", err
		}
		counts := map[string]int64{}
		for k := range c.Keys {
			counts[resourceOf(k)]++
		}
		for k, n := range counts {
			p.res.Counts[CountSnapshot+k] = n
		}
		if c.Revision != snap.Revision {
			return "", fmt.Errorf("the copy's newest row is %d, snapshot %s's metadata says revision %d", c.Revision, snap.Name, snap.Revision)
		}
		return fmt.Sprintf("revision %d as recorded, %d keys in %d resource types", c.Revision, len(c.Keys), len(counts)), nil
	})
}

// resourceOf is the resource type a key holds ("deployments.apps").
func resourceOf(key string) string {
	if ref, ok := registry.ParseKey(key); ok {
		return ref.GroupResource().String()
	}
	return OtherKeys
}

// diffCounts names the resource types whose counts differ, "" when none.
func diffCounts(a, b map[string]int64) string {
	var out []string
	seen := map[string]bool{}
	for _, m := range []map[string]int64{a, b} {
		for k := range m {
			if !seen[k] && a[k] != b[k] {
				out = append(out, fmt.Sprintf("%s %d served, %d in the file", k, a[k], b[k]))
			}
			seen[k] = true
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// loopbackURL is http://127.0.0.1:<a free port>.
func loopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}
