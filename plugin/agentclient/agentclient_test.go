package agentclient

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseAgents(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []Target
		wantErr string
	}{
		{name: "empty", in: nil, want: nil},
		{name: "two", in: []string{"a=127.0.0.1:1", " b=host:2 "}, want: []Target{{Node: "a", Address: "127.0.0.1:1"}, {Node: "b", Address: "host:2"}}},
		{name: "blank entries skipped", in: []string{"", "a=h:1"}, want: []Target{{Node: "a", Address: "h:1"}}},
		{name: "no address", in: []string{"a"}, wantErr: `--agent "a": want NODE=HOST:PORT`},
		{name: "no port", in: []string{"a=host"}, wantErr: `--agent "a=host": want NODE=HOST:PORT`},
		{name: "duplicate", in: []string{"a=h:1", "a=h:2"}, wantErr: `--agent "a=h:2": node a given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAgents(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveNodeFilterReportsUnknownNodes(t *testing.T) {
	got, err := Resolve(context.Background(), Options{
		Agents: []string{"server-2=h:2", "server-1=h:1"},
		Nodes:  []string{"server-2", "ghost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{Node: "ghost"}, {Node: "server-2", Address: "h:2"}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Target{}, "Err")); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if !errors.Is(got[0].Err, ErrNoAgent) {
		t.Errorf("ghost: err = %v, want ErrNoAgent", got[0].Err)
	}
	if got[1].Err != nil {
		t.Errorf("server-2: unexpected error %v", got[1].Err)
	}
}
