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
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/walship"
	"github.com/kubectl-dr/kubectl-dr/internal/pki"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// latencies collects the shipper's spool-to-durable times.
type latencies struct{ ch chan time.Duration }

func (l latencies) Shipped(_ string, _ int64, d time.Duration) { l.ch <- d }
func (l latencies) Failed(string)                              {}
func (l latencies) Refused(string)                             {}

// walbench lands each corpus segment in a spool, one at a time, and times
// it until the agent's shipper (the same code as dr-agent's) has it
// verified in the store. With a command, each segment is also pushed by
// it (its path appended, run as user as PostgreSQL's archive_command would
// be), alternating which goes first: both meet the same moments of the
// machine, and one quiet or busy stretch does not favour either.
func walbench(ctx context.Context, corpus, spool, source string, n int, user, keyFile string, cmd []string) error {
	files, err := filepath.Glob(filepath.Join(corpus, "[0-9A-F]*"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var segs []string
	for _, f := range files {
		if walobj.Classify(filepath.Base(f)) == walobj.Segment {
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
	var cred *syscall.Credential
	if user != "" {
		if cred, err = credential(user); err != nil {
			return err
		}
	}
	obs := latencies{ch: make(chan time.Duration, 1)}
	sh := &walship.Shipper{Source: walship.Source{Name: source, Spool: spool, Concurrency: 4}, Store: store.Sub("bench"), Log: slog.New(slog.DiscardHandler), Observer: obs}
	if keyFile != "" {
		if sh.Recipient, _, err = dbsnap.LoadRecipient(keyFile); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sh.Run(ctx)
	// The agent is up long before PostgreSQL archives its first segment.
	time.Sleep(time.Second)

	ship := func(f string) (time.Duration, error) {
		data, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		name := filepath.Base(f)
		tmp := filepath.Join(spool, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return 0, err
		}
		// The clock starts when the file lands (its rename), as
		// PostgreSQL's archive_command returns.
		if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
			return 0, err
		}
		start := time.Now()
		select {
		case <-obs.ch:
			return time.Since(start), nil
		case <-time.After(time.Minute):
			return 0, fmt.Errorf("%s not shipped within a minute", name)
		}
	}
	push := func(f string) (time.Duration, error) {
		start := time.Now()
		c := exec.Command(cmd[0], append(cmd[1:], f)...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := c.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v %s: %v\n%s", cmd, f, err, out)
		}
		return time.Since(start), nil
	}
	var ours, theirs timings
	for i, f := range segs[:n] {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, a := range order {
			if a {
				d, err := ship(f)
				if err != nil {
					return err
				}
				ours.add(filepath.Base(f), d)
			} else if len(cmd) > 0 {
				d, err := push(f)
				if err != nil {
					return err
				}
				theirs.add(filepath.Base(f), d)
			}
		}
	}
	ours.print("dr-agent shipper")
	if len(cmd) > 0 {
		theirs.print(strings.Join(cmd, " "))
	}
	return nil
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// timings are one side's latencies, by segment.
type timings struct {
	ds    []time.Duration
	names []string
}

func (t *timings) add(name string, d time.Duration) {
	t.ds, t.names = append(t.ds, d), append(t.names, name)
}

// print writes the quantiles, then the slowest segments.
func (t *timings) print(what string) {
	idx := make([]int, len(t.ds))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool { return t.ds[idx[i]] > t.ds[idx[j]] })
	var slow []string
	for _, i := range idx[:min(len(idx), 6)] {
		slow = append(slow, fmt.Sprintf("%s %.0fms", t.names[i], ms(t.ds[i])))
	}
	printQuantiles(what, t.ds)
	fmt.Printf("  slowest: %s\n", strings.Join(slow, ", "))
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

// tlsproxy serves HTTPS on addr with a throwaway certificate, whose CA it
// writes to caFile, and forwards to target: pgBackRest speaks only HTTPS to
// S3, and the shipper goes the same way so both pay for TLS and the hop.
func tlsproxy(addr, target, caFile string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	ca, caPair, err := pki.NewCA("bench")
	if err != nil {
		return err
	}
	if err := os.WriteFile(caFile, caPair.CertPEM, 0o644); err != nil {
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
