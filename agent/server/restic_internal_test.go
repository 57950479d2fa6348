package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// A restic probe that failed (the binary not there yet, a busy start) is
// asked again later instead of staying "unavailable" for the agent's life.
func TestResticProbeIsRetriedAfterAFailure(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "restic")
	s := &Server{cfg: &agentconfig.Config{Restic: agentconfig.Restic{Binary: bin}}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	if got := s.restic(ctx); got != "unavailable" {
		t.Fatalf("restic() with no binary = %q, want unavailable", got)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho restic 0.19.1 compiled with go1.26 on linux/amd64\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := s.restic(ctx); got != "unavailable" {
		t.Errorf("restic() right after a failure = %q, want the failure believed for %s", got, resticRetry)
	}
	s.resticFailed = time.Now().Add(-resticRetry - time.Second)
	if got := s.restic(ctx); got != "0.19.1" {
		t.Errorf("restic() after the retry interval = %q, want 0.19.1", got)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if got := s.restic(ctx); got != "0.19.1" {
		t.Errorf("restic() once known = %q, want it kept", got)
	}
}
