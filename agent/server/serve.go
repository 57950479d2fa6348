package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kubectl-dr/kubectl-dr/agent/config"
	"github.com/kubectl-dr/kubectl-dr/agent/mtls"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
)

// Serve listens on the configured address with mTLS until ctx ends, then
// stops gracefully.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	tlsCfg, err := mtls.ServerConfig(cfg.TLS)
	if err != nil {
		return fmt.Errorf("agent TLS: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	agentv1.RegisterAgentServiceServer(gs, New(cfg, log))

	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		gs.GracefulStop()
	}()
	log.Info("agent serving", "node", cfg.NodeName, "listen", lis.Addr().String(), "dataDir", cfg.DataDir)
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve gRPC: %w", err)
	}
	<-done
	return nil
}
