package printers

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress reports a long operation's progress on stderr: a redrawn bar on
// a terminal, one JSON event a line with -o json, nothing otherwise.
type Progress struct {
	w    io.Writer
	tty  bool
	json bool

	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

// NewProgress decides how to report from the writer and the output format.
func NewProgress(w io.Writer, output string) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Progress{w: w, tty: tty, json: output == JSON, start: time.Now()}
}

// ProgressEvent is the JSON form of one progress report.
type ProgressEvent struct {
	Type       string  `json:"type"`
	Node       string  `json:"node,omitempty"`
	Phase      string  `json:"phase,omitempty"`
	Message    string  `json:"message,omitempty"`
	BytesDone  int64   `json:"bytesDone,omitempty"`
	BytesTotal int64   `json:"bytesTotal,omitempty"`
	Percent    float64 `json:"percent,omitempty"`
	FilesDone  int64   `json:"filesDone,omitempty"`
	FilesTotal int64   `json:"filesTotal,omitempty"`
	ETASeconds int64   `json:"etaSeconds,omitempty"`
}

// Update reports one step.
func (p *Progress) Update(ev ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev.Type = "progress"
	switch {
	case p.json:
		data, _ := json.Marshal(ev)
		fmt.Fprintln(p.w, string(data))
	case p.tty:
		now := time.Now()
		if now.Sub(p.last) < 100*time.Millisecond && ev.Message == "" {
			return
		}
		p.last = now
		line := strings.TrimSpace(ev.Node + " " + ev.Phase)
		if ev.BytesTotal > 0 {
			pct := min(100*float64(ev.BytesDone)/float64(ev.BytesTotal), 100)
			width := 30
			fill := int(pct / 100 * float64(width))
			line += fmt.Sprintf(" [%s%s] %5.1f%% %s/%s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, HumanBytes(ev.BytesDone), HumanBytes(ev.BytesTotal))
		} else if ev.BytesDone > 0 {
			line += " " + HumanBytes(ev.BytesDone)
		}
		if ev.Message != "" {
			line += " " + ev.Message
		}
		line += fmt.Sprintf(" %s", time.Since(p.start).Round(time.Second))
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	}
}

// Done ends the bar's line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// NodeProgress reports one line per node: redrawn in place on a terminal,
// one JSON event a line with -o json, and otherwise a line when a node
// changes phase.
type NodeProgress struct {
	w    io.Writer
	tty  bool
	json bool

	mu    sync.Mutex
	order []string
	lines map[string]string
	phase map[string]string
	last  time.Time
	drawn int
}

// NewNodeProgress decides how to report from the writer and the output
// format.
func NewNodeProgress(w io.Writer, output string) *NodeProgress {
	p := NewProgress(w, output)
	return &NodeProgress{w: w, tty: p.tty, json: p.json, lines: map[string]string{}, phase: map[string]string{}}
}

// Update reports one node's step; key names the line (a node, or "etcd").
func (p *NodeProgress) Update(key string, ev ProgressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev.Type = "progress"
	ev.Node = key
	if p.json {
		data, _ := json.Marshal(ev)
		fmt.Fprintln(p.w, string(data))
		return
	}
	if _, ok := p.lines[key]; !ok {
		p.order = append(p.order, key)
	}
	line := fmt.Sprintf("%-12s %-8s", key, ev.Phase)
	if ev.Percent > 0 {
		line += fmt.Sprintf(" %5.1f%%", ev.Percent)
	}
	if ev.FilesTotal > 0 {
		line += fmt.Sprintf(" %d/%d files", ev.FilesDone, ev.FilesTotal)
	}
	if ev.BytesTotal > 0 {
		line += fmt.Sprintf(" %s/%s", HumanBytes(ev.BytesDone), HumanBytes(ev.BytesTotal))
	} else if ev.BytesDone > 0 {
		line += " " + HumanBytes(ev.BytesDone)
	}
	if ev.ETASeconds > 0 {
		line += fmt.Sprintf(" ETA %s", time.Duration(ev.ETASeconds)*time.Second)
	}
	if ev.Message != "" {
		line += " " + ev.Message
	}
	p.lines[key] = line
	if !p.tty {
		if p.phase[key] != ev.Phase || ev.Phase == "done" || ev.Phase == "failed" {
			p.phase[key] = ev.Phase
			fmt.Fprintln(p.w, line)
		}
		return
	}
	if now := time.Now(); now.Sub(p.last) < 100*time.Millisecond && ev.Phase != "done" && ev.Phase != "failed" {
		return
	} else {
		p.last = now
	}
	p.redrawLocked()
}

func (p *NodeProgress) redrawLocked() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\033[%dA", p.drawn)
	}
	for _, k := range p.order {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.lines[k])
	}
	p.drawn = len(p.order)
}

// Done draws the final lines.
func (p *NodeProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && len(p.order) > 0 {
		p.redrawLocked()
	}
}
