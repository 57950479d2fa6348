package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubectl-dr/kubectl-dr/agent/server"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/mtls"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
)

type certs struct {
	// server is the agents' bootstrap certificate, server1 node
	// server-1's (as if enrolled).
	server, server1, client, otherClient mtls.Files
	ca, otherCA                          *pki.CA
}

func writeCerts(t *testing.T) certs {
	t.Helper()
	dir := t.TempDir()
	ca, caPair, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, otherPair, err := pki.NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	write := func(ca *pki.CA, name string, o pki.LeafOptions) (string, string) {
		kp, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := kp.WriteFiles(c, k); err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	caFile, otherCAFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "other-ca.crt")
	if err := os.WriteFile(caFile, caPair.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCAFile, otherPair.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	sc, sk := write(ca, "server", pki.LeafOptions{CommonName: "agent", DNSNames: []string{"dr-agent"}, Server: true})
	s1c, s1k := write(ca, "server-1", pki.LeafOptions{CommonName: pki.NodeDNSName("server-1"), DNSNames: pki.NodeDNSNames("server-1"), Server: true})
	cc, ck := write(ca, "client", pki.LeafOptions{CommonName: "kubectl-dr", Client: true})
	oc, ok := write(other, "other", pki.LeafOptions{CommonName: "intruder", Client: true})
	return certs{
		server:      mtls.Files{CA: caFile, Cert: sc, Key: sk},
		server1:     mtls.Files{CA: caFile, Cert: s1c, Key: s1k},
		ca:          ca,
		otherCA:     other,
		client:      mtls.Files{CA: caFile, Cert: cc, Key: ck},
		otherClient: mtls.Files{CA: caFile, Cert: oc, Key: ok},
	}
}

// startAgent serves the agent over an in-memory listener with mTLS.
func startAgent(t *testing.T, cfg *agentconfig.Config) *bufconn.Listener {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := srv.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	gs := srv.GRPCServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis
}

func dial(t *testing.T, lis *bufconn.Listener, creds credentials.TransportCredentials) agentv1.AgentServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return agentv1.NewAgentServiceClient(cc)
}

func TestInfoRequiresClientCertificate(t *testing.T) {
	c := writeCerts(t)
	dataDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dataDir, "agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &agentconfig.Config{NodeName: "worker-1", DataDir: dataDir, TLS: c.server, Restic: agentconfig.Restic{Binary: "/nonexistent/restic"}}
	lis := startAgent(t, cfg)

	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	withoutCert := clientTLS.Clone()
	withoutCert.Certificates = nil
	otherTLS, err := mtls.ClientConfig(c.otherClient, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		creds  credentials.TransportCredentials
		wantOK bool
	}{
		{"client certificate from the agents' CA", credentials.NewTLS(clientTLS), true},
		{"TLS without a client certificate", credentials.NewTLS(withoutCert), false},
		{"client certificate from another CA", credentials.NewTLS(otherTLS), false},
		{"plaintext", insecure.NewCredentials(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := dial(t, lis, tt.creds).Info(ctx, &agentv1.InfoRequest{})
			if !tt.wantOK {
				if err == nil {
					t.Fatalf("Info answered a client it should refuse: %v", resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			if resp.NodeName != "worker-1" {
				t.Errorf("node name = %q, want worker-1", resp.NodeName)
			}
			if len(resp.Roles) != 1 || resp.Roles[0] != agentv1.NodeRole_NODE_ROLE_AGENT {
				t.Errorf("roles = %v, want [agent] for a data dir without server/", resp.Roles)
			}
			if resp.ResticVersion != "unavailable" {
				t.Errorf("restic version = %q, want unavailable for a missing binary", resp.ResticVersion)
			}
			if resp.Etcd.GetMember() {
				t.Errorf("etcd member reported on a node without server/db/etcd")
			}
		})
	}
}

// Errors carry a reason the plugin matches and the node's name; errors the
// handler gave no reason carry their code's name.
func TestErrorsCarryReasons(t *testing.T) {
	c := writeCerts(t)
	dataDir := t.TempDir()
	cfg := &agentconfig.Config{NodeName: "worker-7", DataDir: dataDir, TLS: c.server, Restic: agentconfig.Restic{Binary: "/nonexistent/restic"}}
	lis := startAgent(t, cfg)
	clientTLS, err := mtls.ClientConfig(c.client, "dr-agent")
	if err != nil {
		t.Fatal(err)
	}
	cli := dial(t, lis, credentials.NewTLS(clientTLS))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stream, err := cli.BackupFiles(ctx, &agentv1.BackupFilesRequest{BackupSet: "backup-20260101-000000"})
	if err == nil {
		_, err = stream.Recv()
	}
	if got := agentclient.Reason(err); got != agentv1.ReasonFilesOff {
		t.Errorf("backup on a node without restic: reason %q (%v), want %s", got, err, agentv1.ReasonFilesOff)
	}
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition {
		t.Errorf("code %v, want FailedPrecondition", st.Code())
	}
	var node string
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			node = info.Metadata[agentv1.MetadataNode]
		}
	}
	if node != "worker-7" {
		t.Errorf("error names node %q, want worker-7", node)
	}

	_, err = cli.WALStatus(ctx, &agentv1.WALStatusRequest{Source: "nope"})
	if got := agentclient.Reason(err); got != agentv1.ReasonNoStore && got != agentv1.ReasonNoWALSource {
		t.Errorf("WAL status of an unknown source: reason %q (%v)", got, err)
	}

	_, err = cli.DeleteEtcdSnapshots(ctx, &agentv1.DeleteEtcdSnapshotsRequest{Names: []string{"../bad"}})
	if got := agentclient.Reason(err); got == "" || got == agentv1.ReasonFilesOff {
		t.Errorf("a call refused without a precise reason: reason %q (%v), want its code's name", got, err)
	}
}

// signerOf signs records with files' certificate and key, as the agent
// holding them does.
func signerOf(t *testing.T, files mtls.Files) *signature.Signer {
	t.Helper()
	pair, err := files.KeyPair()
	if err != nil {
		t.Fatal(err)
	}
	sign, err := signature.FromKeyPair(pair)
	if err != nil {
		t.Fatal(err)
	}
	return sign
}
