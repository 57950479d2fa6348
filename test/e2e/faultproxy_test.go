package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultProxy stands between an agent and the lab's real MinIO on loopback
// and breaks the network on command: it cuts every connection once the
// client has sent a byte budget, or refuses connections while "down".
type faultProxy struct {
	lis    net.Listener
	target string

	sent   atomic.Int64
	budget atomic.Int64 // 0: unlimited
	down   atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{lis: lis, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { lis.Close(); p.cut() })
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.lis.Addr().String() }

// cutAfter lets n more bytes through to MinIO, then breaks everything.
func (p *faultProxy) cutAfter(n int64) {
	p.sent.Store(0)
	p.budget.Store(n)
}

// setDown refuses (true) or accepts (false) connections; going down cuts
// the open ones.
func (p *faultProxy) setDown(down bool) {
	p.down.Store(down)
	if down {
		p.cut()
	} else {
		p.budget.Store(0)
	}
}

func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) serve() {
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

func (p *faultProxy) handle(client net.Conn) {
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
		io.Copy(client, server)
		client.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			total := p.sent.Add(int64(n))
			if b := p.budget.Load(); b > 0 && total > b {
				p.setDown(true)
				return
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
