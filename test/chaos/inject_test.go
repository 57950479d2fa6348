package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// injector lands one step's fault on the operation running while it is
// armed, and heals it again after the step's outage.
type injector struct {
	h *harness
	s step

	mu     sync.Mutex
	target *plugin
	landed bool
	note   string

	opDone   chan struct{}
	finished chan struct{}
	aimed    chan struct{}
}

// arm starts the step's fault clock at the start of the operation, or
// at its anchor once aim has named the command to watch.
func (h *harness) arm(s step) *injector {
	in := &injector{h: h, s: s, opDone: make(chan struct{}), finished: make(chan struct{}), aimed: make(chan struct{})}
	go func() {
		defer close(in.finished)
		if s.Anchored {
			select {
			case <-in.opDone:
				return
			case <-in.aimed:
			}
			select {
			case <-in.opDone:
				return
			case <-in.target.anchored:
			}
		}
		var cut <-chan struct{}
		if s.Fault == faultNetCut {
			cut = h.proxy.CutAfterTransfer(s.Bytes)
		}
		in.run(cut)
	}()
	return in
}

// aim names the command a plugin kill hits and whose output holds the
// anchor.
func (in *injector) aim(p *plugin) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.target = p
	close(in.aimed)
}

// disarm says the operation is over and waits until the fault is healed;
// it reports whether the fault landed during the operation.
func (in *injector) disarm() (bool, string) {
	close(in.opDone)
	<-in.finished
	if in.s.Fault == faultNetCut {
		in.h.proxy.SetDown(false)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.landed, in.note
}

func (in *injector) hit(note string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.landed = true
	in.note = note
}

func (in *injector) miss(note string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.note = note
}

func (in *injector) run(cut <-chan struct{}) {
	h, s := in.h, in.s
	if s.Fault == faultNetCut {
		select {
		case <-in.opDone:
			return
		case <-cut:
		}
		in.hit(fmt.Sprintf("network cut after %d bytes", s.Bytes))
		time.Sleep(s.Outage)
		h.proxy.SetDown(false)
		return
	}
	select {
	case <-in.opDone:
		return
	case <-time.After(s.After):
	}
	switch s.Fault {
	case faultPluginKill:
		in.mu.Lock()
		p := in.target
		in.mu.Unlock()
		if p != nil && p.kill() {
			in.hit(fmt.Sprintf("kubectl dr %v killed after %s", p.args, time.Since(p.start).Round(time.Millisecond)))
		}
	case faultAgentKill:
		was, err := h.l.KillProcess(agentName(s.Node))
		if err != nil || !was {
			in.miss(fmt.Sprintf("%s's agent not killed (running %v): %v", s.Node, was, err))
			return
		}
		in.hit(fmt.Sprintf("%s's agent killed", s.Node))
		time.Sleep(s.Outage)
		// As the DaemonSet would; ensureUp tries again if this fails.
		_ = h.l.StartAgent(context.Background(), agentName(s.Node), h.cfgs[s.Node])
	case faultMinIOKill:
		was, err := h.l.KillProcess("minio")
		if err != nil || !was {
			in.miss(fmt.Sprintf("MinIO not killed (running %v): %v", was, err))
			return
		}
		in.hit("MinIO killed")
		time.Sleep(s.Outage)
		_ = h.l.StartMinIO(context.Background())
	}
}
