package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestExitCode(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithTimeout(live, time.Nanosecond)
	defer cancel2()
	<-expired.Done()

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"ok", live, nil, ExitOK},
		{"failure", live, errors.New("boom"), ExitFailure},
		{"usage", live, UsageError("bad flag"), ExitUsage},
		{"partial, wrapped", live, fmt.Errorf("status: %w", Partial("1 of 2 nodes")), ExitPartial},
		{"explicit exit code", live, &ExitError{Code: ExitInterrupted, Err: errors.New("backup interrupted")}, ExitInterrupted},
		{"context.Canceled without an interrupt", live, context.Canceled, ExitFailure},
		{"interrupted, cancellation error", cancelled, fmt.Errorf("list: %w", context.Canceled), ExitInterrupted},
		{"interrupted, gRPC status", cancelled, status.Error(codes.Canceled, "context canceled"), ExitInterrupted},
		{"interrupted, a message only", cancelled, errors.New("node a: agent did not answer: Canceled"), ExitInterrupted},
		{"interrupted, usage error", cancelled, UsageError("nothing restored"), ExitInterrupted},
		{"interrupted, finished anyway", cancelled, nil, ExitInterrupted},
		{"deadline is not an interrupt", expired, errors.New("slow"), ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.ctx, tt.err); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestReport(t *testing.T) {
	withOutput := func(o string) *cobra.Command {
		c := &cobra.Command{Use: "x"}
		c.Flags().StringP("output", "o", o, "")
		return c
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		cmd  *cobra.Command
		err  error
		code int
		want string
	}{
		{"ok prints nothing", context.Background(), withOutput("json"), nil, 0, ""},
		{"text", context.Background(), withOutput("table"), Partial("1 of 2 nodes could not be reached: b"), 3, "error: 1 of 2 nodes could not be reached: b\n"},
		{"command without -o", context.Background(), &cobra.Command{Use: "y"}, errors.New("boom"), 1, "error: boom\n"},
		{"no command", context.Background(), nil, errors.New("boom"), 1, "error: boom\n"},
		{"json, nothing escaped for HTML", context.Background(), withOutput("json"), errors.New(`read "s3://b/<p>" & fail`), 1,
			`{"type":"error","kind":"Error","apiVersion":"dr.kubectl.io/v1","error":"read \"s3://b/<p>\" & fail","exitCode":1}` + "\n"},
		{"interrupted without an error", cancelled, withOutput("json"), nil, 130,
			`{"type":"error","kind":"Error","apiVersion":"dr.kubectl.io/v1","error":"interrupted: context canceled","exitCode":130}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if code := Report(tt.ctx, &buf, tt.cmd, tt.err); code != tt.code {
				t.Errorf("code %d, want %d", code, tt.code)
			}
			if buf.String() != tt.want {
				t.Errorf("wrote %q, want %q", buf.String(), tt.want)
			}
		})
	}
}
