package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
)

// Result is one check's outcome.
type Result struct {
	Name     string
	Query    string
	Expect   string
	Got      string
	OK       bool
	Error    string
	Duration time.Duration
}

// SQL runs check's query against the database at connection (a libpq
// connection string; check.Database replaces its database): one row with
// one column, its value as text (t/f, 42, NULL as empty), as psql -At
// prints it. A database that does not answer yet is tried again until the
// check's timeout.
func SQL(ctx context.Context, connection string, check agentconfig.Check) (r Result) {
	r = Result{Name: check.Name, Query: check.Query, Expect: check.Expect}
	start := time.Now()
	defer func() { r.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, check.CheckTimeout())
	defer cancel()
	got, err := query(ctx, connection, check.Database, check.Query)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Got = got
	r.OK = got == check.Expect
	if !r.OK {
		r.Error = fmt.Sprintf("got %q, want %q", got, check.Expect)
	}
	return r
}

func query(ctx context.Context, connection, database, q string) (string, error) {
	cfg, err := pgx.ParseConfig(connection)
	if err != nil {
		return "", fmt.Errorf("connection: %w", err)
	}
	if database != "" {
		cfg.Database = database
	}
	// A recovered database may still be starting: connecting is retried
	// until the check's timeout.
	var conn *pgx.Conn
	for {
		conn, err = pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("connect to %s on %s: %w", cfg.Database, cfg.Host, err)
		case <-time.After(time.Second):
		}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, q, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	n := 0
	for rows.Next() {
		n++
		raw := rows.RawValues()
		if len(raw) != 1 {
			return "", fmt.Errorf("the query returned %d columns, want one", len(raw))
		}
		out = append(out, string(raw[0]))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if n != 1 {
		return "", fmt.Errorf("the query returned %d rows, want one", n)
	}
	return out[0], nil
}

// HTTP gets check.HTTP and compares the status with check.ExpectStatus.
func HTTP(ctx context.Context, client *http.Client, check agentconfig.Check) (r Result) {
	want := check.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	r = Result{Name: check.Name, Query: "GET " + check.HTTP, Expect: fmt.Sprint(want)}
	start := time.Now()
	defer func() { r.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, check.CheckTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, check.HTTP, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			r.Error = fmt.Sprintf("no answer within %s", check.CheckTimeout())
		} else {
			r.Error = err.Error()
		}
		return r
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r.Got = fmt.Sprint(resp.StatusCode)
	r.OK = resp.StatusCode == want
	if !r.OK {
		r.Error = fmt.Sprintf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(http.StatusText(resp.StatusCode)), want)
	}
	return r
}
