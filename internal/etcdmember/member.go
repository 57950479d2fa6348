package etcdmember

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
)

// ClientConfig says how to reach the local etcd member.
type ClientConfig struct {
	Endpoint string
	CA       string
	Cert     string
	Key      string
}

// New opens an etcd v3 client with client-certificate auth.
func (c ClientConfig) New(opts ...grpc.DialOption) (*clientv3.Client, error) {
	tlsCfg, err := c.tls()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.Endpoint},
		TLS:         tlsCfg,
		DialTimeout: 3 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: opts,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", c.Endpoint, err)
	}
	return cli, nil
}

func (c ClientConfig) tls() (*tls.Config, error) {
	cfg, err := mtls.ClientConfig(mtls.Files{CA: c.CA, Cert: c.Cert, Key: c.Key}, "")
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return cfg, nil
}

// MemberStatus is what the local member says about itself.
type MemberStatus struct {
	Healthy    bool
	Endpoint   string
	MemberID   uint64
	MemberName string
	LeaderID   uint64
	Version    string
	DBSize     int64
	Revision   int64
	RaftTerm   uint64
	RaftIndex  uint64
	ClusterID  uint64
	// PeerURLs are the member's own peer URLs (from the member list).
	PeerURLs []string
	// ClientURLs are the member's own client URLs.
	ClientURLs []string
	Err        error
}

// Leader reports whether the local member leads the cluster.
func (s MemberStatus) Leader() bool { return s.MemberID != 0 && s.MemberID == s.LeaderID }

// HexID formats an etcd id the way etcdctl prints it.
func HexID(id uint64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatUint(id, 16)
}

// Status asks the member for its status and, like `etcdctl endpoint health`,
// does a linearizable read: a member without quorum is not healthy.
func Status(ctx context.Context, cfg ClientConfig) MemberStatus {
	st := MemberStatus{Endpoint: cfg.Endpoint}
	cli, err := cfg.New()
	if err != nil {
		st.Err = err
		return st
	}
	defer cli.Close()

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Status(ctx, cfg.Endpoint)
	if err != nil {
		st.Err = fmt.Errorf("etcd status at %s: %w", cfg.Endpoint, err)
		return st
	}
	st.MemberID = resp.Header.MemberId
	st.ClusterID = resp.Header.ClusterId
	st.LeaderID = resp.Leader
	st.Version = resp.Version
	st.DBSize = resp.DbSize
	st.Revision = resp.Header.Revision
	st.RaftTerm = resp.RaftTerm
	st.RaftIndex = resp.RaftIndex
	if members, err := cli.MemberList(ctx); err == nil {
		for _, m := range members.Members {
			if m.ID == st.MemberID {
				st.MemberName = m.Name
				st.PeerURLs = m.PeerURLs
				st.ClientURLs = m.ClientURLs
			}
		}
	}
	if len(resp.Errors) > 0 {
		st.Err = fmt.Errorf("etcd member reports errors: %v", resp.Errors)
		return st
	}
	if resp.Leader == 0 {
		st.Err = fmt.Errorf("etcd member %s has no leader", HexID(st.MemberID))
		return st
	}
	if _, err := cli.Get(ctx, "health"); err != nil {
		st.Err = fmt.Errorf("etcd linearizable read: %w", err)
		return st
	}
	st.Healthy = true
	return st
}
