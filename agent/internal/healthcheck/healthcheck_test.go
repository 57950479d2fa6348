package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if r := HTTP(ctx, srv.Client(), agentconfig.Check{Name: "up", HTTP: srv.URL + "/"}); !r.OK || r.Got != "200" || r.Expect != "200" {
		t.Errorf("up: %+v", r)
	}
	r := HTTP(ctx, srv.Client(), agentconfig.Check{Name: "down", HTTP: srv.URL + "/down"})
	if r.OK || r.Got != "503" || !strings.Contains(r.Error, "status 503 (Service Unavailable), want 200") {
		t.Errorf("down: %+v", r)
	}
	if r := HTTP(ctx, srv.Client(), agentconfig.Check{Name: "maintenance", HTTP: srv.URL + "/down", ExpectStatus: 503}); !r.OK {
		t.Errorf("expect 503: %+v", r)
	}
}

func TestSQLUnreachableWithinTimeout(t *testing.T) {
	r := SQL(context.Background(), "host=127.0.0.1 port=1 user=postgres sslmode=disable", agentconfig.Check{Name: "rows", Database: "postgres", Query: "SELECT 1", Expect: "1", Timeout: "1500ms"})
	if r.OK || !strings.Contains(r.Error, "connect to postgres on 127.0.0.1") {
		t.Errorf("unreachable: %+v", r)
	}
}
