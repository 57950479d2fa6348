package agentclient

import (
	"context"
	"errors"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// The end of a forwarded connection is not reported; every other error
// reaches each handler.
func TestQuietPortForward(t *testing.T) {
	var got []string
	record := func(_ context.Context, err error, _ string, _ ...any) { got = append(got, err.Error()) }
	handlers := QuietPortForward([]utilruntime.ErrorHandler{record, record})
	if len(handlers) != 1 {
		t.Fatalf("%d handlers, want one wrapping the given ones", len(handlers))
	}
	h := handlers[0]
	h(context.Background(), errors.New("error copying from local connection to remote stream: EOF"), "Unhandled Error")
	h(context.Background(), errors.New("error copying from remote stream to local connection: broken pipe"), "Unhandled Error")
	h(context.Background(), errors.New("error creating error stream for port 1 -> 9650: timeout"), "Unhandled Error")
	want := []string{"error creating error stream for port 1 -> 9650: timeout", "error creating error stream for port 1 -> 9650: timeout"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("handlers saw %q, want %q", got, want)
	}
}
