package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Proxy forwards connections to its target until told to break them.
type Proxy struct {
	lis    net.Listener
	target string

	sent   atomic.Int64
	budget atomic.Int64 // 0: unlimited
	// both counts the bytes the target sends back against the budget too.
	both atomic.Bool
	down atomic.Bool
	// total counts every byte forwarded, both ways.
	total atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	// cutc is closed when the armed budget is spent (nil when none is).
	cutc chan struct{}
}

// New listens on a free loopback port and forwards to target (host:port).
func New(target string) (*Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy for %s: %w", target, err)
	}
	p := &Proxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

// URL is the proxy as an http endpoint.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Close stops listening and cuts every open connection.
func (p *Proxy) Close() error {
	err := p.lis.Close()
	p.cut()
	return err
}

// CutAfter lets n more bytes through to the target, then goes down (see
// SetDown). The channel is closed at that moment.
func (p *Proxy) CutAfter(n int64) <-chan struct{} { return p.arm(n, false) }

// CutAfterTransfer is CutAfter counting the bytes in both directions, for
// downloads as much as uploads.
func (p *Proxy) CutAfterTransfer(n int64) <-chan struct{} { return p.arm(n, true) }

func (p *Proxy) arm(n int64, both bool) <-chan struct{} {
	c := make(chan struct{})
	p.mu.Lock()
	p.cutc = c
	p.mu.Unlock()
	p.sent.Store(0)
	p.both.Store(both)
	p.budget.Store(n)
	return c
}

// Transferred is how many bytes the proxy forwarded, both ways, since it
// started.
func (p *Proxy) Transferred() int64 { return p.total.Load() }

// Down reports whether the proxy refuses connections.
func (p *Proxy) Down() bool { return p.down.Load() }

// SetDown refuses (true) or accepts (false) connections; going down cuts
// the open ones, coming up disarms a byte budget.
func (p *Proxy) SetDown(down bool) {
	p.down.Store(down)
	if down {
		p.cut()
		return
	}
	p.budget.Store(0)
	p.mu.Lock()
	p.cutc = nil
	p.mu.Unlock()
}

func (p *Proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	if p.cutc != nil && p.budget.Load() > 0 {
		close(p.cutc)
		p.cutc = nil
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	defer func() {
		p.track(client, false)
		p.track(server, false)
		client.Close()
		server.Close()
	}()
	go func() {
		p.pipe(client, server, true)
		client.Close()
	}()
	p.pipe(server, client, false)
}

// pipe copies from src to dst until either ends or the budget is spent;
// back says these are the target's bytes to the client.
func (p *Proxy) pipe(dst, src net.Conn, back bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.total.Add(int64(n))
			if !back || p.both.Load() {
				total := p.sent.Add(int64(n))
				if b := p.budget.Load(); b > 0 && total > b {
					p.SetDown(true)
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
