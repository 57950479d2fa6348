package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/objstore"
	"github.com/kubectl-dr/kubectl-dr/agent/pki"
	"github.com/kubectl-dr/kubectl-dr/agent/wal"
)

// latencies collects the shipper's spool-to-durable times.
type latencies struct{ ch chan time.Duration }

func (l latencies) Shipped(_ string, _ int64, d time.Duration) { l.ch <- d }
func (l latencies) Failed(string)                              {}

// walbench lands each corpus segment in a spool, one at a time, and times
// it until the agent's shipper (the same code as dr-agent's) has it
// verified in the store.
func walbench(ctx context.Context, corpus, spool, source string, n int) error {
	files, err := filepath.Glob(filepath.Join(corpus, "[0-9A-F]*"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var segs []string
	for _, f := range files {
		if wal.Classify(filepath.Base(f)) == wal.Segment {
			segs = append(segs, f)
		}
	}
	if len(segs) < n {
		return fmt.Errorf("corpus %s has %d segments, want %d", corpus, len(segs), n)
	}
	store, err := objstore.Open(objstore.Config{}.FromEnv())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	obs := latencies{ch: make(chan time.Duration, 1)}
	sh := &wal.Shipper{Source: wal.Source{Name: source, Spool: spool, Concurrency: 4}, Store: store.Sub("bench"), Log: slog.New(slog.DiscardHandler), Observer: obs}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sh.Run(ctx)
	var ds []time.Duration
	for _, f := range segs[:n] {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		name := filepath.Base(f)
		tmp := filepath.Join(spool, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		// The clock starts when the file lands (its rename), as
		// PostgreSQL's archive_command returns.
		if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
			return err
		}
		start := time.Now()
		select {
		case <-obs.ch:
			ds = append(ds, time.Since(start))
		case <-time.After(time.Minute):
			return fmt.Errorf("%s not shipped within a minute", name)
		}
	}
	printQuantiles("dr-agent shipper", ds)
	return nil
}

func printQuantiles(what string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	fmt.Printf("%s: n=%d p50=%.1fms p99=%.1fms mean=%.1fms max=%.1fms\n", what, len(ds),
		ms(q(0.5)), ms(q(0.99)), ms(sum/time.Duration(len(ds))), ms(ds[len(ds)-1]))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// tlsproxy serves HTTPS on addr with a throwaway certificate and forwards
// to target: pgBackRest speaks only HTTPS to S3.
func tlsproxy(addr, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	ca, _, err := pki.NewCA("bench")
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(pki.LeafOptions{CommonName: "127.0.0.1", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := &http.Server{Addr: addr, Handler: rp, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	lis, err := tls.Listen("tcp", addr, srv.TLSConfig)
	if err != nil {
		return err
	}
	return srv.Serve(lis)
}

// timepush runs cmd with each segment's path, one at a time, as
// PostgreSQL's archive_command would, and times each run.
func timepush(corpus string, n int, cmd []string) error {
	if len(cmd) == 0 {
		return fmt.Errorf("timepush: no command")
	}
	files, err := filepath.Glob(filepath.Join(corpus, "[0-9A-F]*"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var ds []time.Duration
	for _, f := range files {
		if wal.Classify(filepath.Base(f)) != wal.Segment {
			continue
		}
		if len(ds) == n {
			break
		}
		start := time.Now()
		c := exec.Command(cmd[0], append(cmd[1:], f)...)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%v %s: %v\n%s", cmd, f, err, out)
		}
		ds = append(ds, time.Since(start))
	}
	printQuantiles(strings.Join(cmd, " "), ds)
	return nil
}
